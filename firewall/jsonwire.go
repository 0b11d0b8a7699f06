package firewall

import (
	"encoding/json"
	"math"
	"time"
)

// MarshalJSON writes Timeout as timeout_seconds, a number like every
// duration dialgate prints as JSON.
func (e SetEntry) MarshalJSON() ([]byte, error) {
	type plain SetEntry
	return json.Marshal(struct {
		plain
		Timeout float64 `json:"timeout_seconds"`
	}{plain(e), math.Round(e.Timeout.Seconds()*1000) / 1000})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *SetEntry) UnmarshalJSON(b []byte) error {
	type plain SetEntry
	w := struct {
		*plain
		Timeout float64 `json:"timeout_seconds"`
	}{plain: (*plain)(e)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.Timeout = time.Duration(math.Round(w.Timeout * float64(time.Second)))
	return nil
}
