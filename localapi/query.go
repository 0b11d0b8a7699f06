package localapi

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
)

// DropFilterQuery encodes f for GET /v1/drops (its clock is the
// daemon's).
func DropFilterQuery(f firewall.DropFilter) url.Values {
	q := url.Values{}
	if f.Since > 0 {
		q.Set("since", f.Since.String())
	}
	if f.Service != "" {
		q.Set("service", f.Service)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ParseDropFilter is DropFilterQuery's inverse.
func ParseDropFilter(q url.Values) (firewall.DropFilter, error) {
	f := firewall.DropFilter{Service: q.Get("service")}
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return f, fmt.Errorf("%w: since %q: want a duration such as 15m or 1h", auth.ErrInvalid, s)
		}
		f.Since = d
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return f, fmt.Errorf("%w: limit %q: want a count", auth.ErrInvalid, s)
		}
		f.Limit = n
	}
	return f, nil
}
