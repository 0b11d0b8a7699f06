package localapi

import (
	"encoding/json"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"time"
)

// The JSON the LocalAPI answers with, and `--json` prints, follows four
// rules, checked by tests over the wire types and over every --json
// command in a lab:
//
//   - keys are lower-case snake_case, given by explicit json tags;
//   - lists are [] when empty, never null (EmptyLists);
//   - durations are numbers of seconds in keys ending in _seconds;
//   - times are RFC 3339 with their zone (encoding/json's time.Time).

var (
	snakeKey = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// goDuration is time.Duration.String's form: "1h0m0s", "1.5s", "250ms".
	goDuration = regexp.MustCompile(`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
	timeLike   = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]`)
)

// CheckJSON walks decoded JSON and reports what breaks the wire rules
// (jsonwire.go): a key that is not lower-case snake_case, a null, a Go
// duration string, a time that is not RFC 3339 with its zone. It is
// what the tests of the wire types and of every --json command hold
// the output to.
func CheckJSON(path string, v any) []string {
	var bad []string
	switch v := v.(type) {
	case nil:
		bad = append(bad, path+": null")
	case map[string]any:
		for k, x := range v {
			if !snakeKey.MatchString(k) {
				bad = append(bad, path+": key "+k+" is not lower-case snake_case")
			}
			bad = append(bad, CheckJSON(path+"."+k, x)...)
		}
	case []any:
		for i, x := range v {
			bad = append(bad, CheckJSON(path+"["+strconv.Itoa(i)+"]", x)...)
		}
	case string:
		if goDuration.MatchString(v) {
			bad = append(bad, path+": "+v+" is a Go duration string, want a number of seconds")
		}
		if timeLike.MatchString(v) {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				bad = append(bad, path+": "+v+" is not an RFC 3339 time with its zone")
			}
		}
	}
	return bad
}

// EmptyLists returns a copy of v in which every nil slice reachable
// through structs, pointers, slices, arrays and interfaces is an empty
// one, so that it encodes as [] rather than null. v itself is left as it
// is. Maps are not entered.
func EmptyLists(v any) any {
	if v == nil {
		return nil
	}
	rv := reflect.ValueOf(v)
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(rv)
	fillLists(cp)
	return cp.Interface()
}

func fillLists(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() || !mayHoldLists(v.Type().Elem()) {
			return
		}
		n := reflect.New(v.Type().Elem())
		n.Elem().Set(v.Elem())
		fillLists(n.Elem())
		v.Set(n)
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		cp := reflect.New(v.Elem().Type()).Elem()
		cp.Set(v.Elem())
		fillLists(cp)
		v.Set(cp)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillLists(f)
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			fillLists(v.Index(i))
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		if !mayHoldLists(v.Type().Elem()) {
			return
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(n, v)
		for i := range n.Len() {
			fillLists(n.Index(i))
		}
		v.Set(n)
	}
}

// mayHoldLists reports whether a value of type t can reach a slice
// fillLists would change.
func mayHoldLists(t reflect.Type) bool {
	return mayHold(t, map[reflect.Type]bool{})
}

func mayHold(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Slice, reflect.Interface:
		return true
	case reflect.Pointer, reflect.Array:
		return mayHold(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && mayHold(f.Type, seen) {
				return true
			}
		}
	}
	return false
}

// Seconds is d as a JSON number of seconds, to the millisecond.
func Seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

// FromSeconds is Seconds' inverse.
func FromSeconds(s float64) time.Duration {
	return time.Duration(math.Round(s * float64(time.Second)))
}

// MarshalJSON writes Lifetime as lifetime_seconds.
func (a AccountInfo) MarshalJSON() ([]byte, error) {
	type plain AccountInfo
	return json.Marshal(struct {
		plain
		Lifetime float64 `json:"lifetime_seconds,omitempty"`
	}{plain(a), Seconds(a.Lifetime)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *AccountInfo) UnmarshalJSON(b []byte) error {
	type plain AccountInfo
	w := struct {
		*plain
		Lifetime float64 `json:"lifetime_seconds"`
	}{plain: (*plain)(a)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	a.Lifetime = FromSeconds(w.Lifetime)
	return nil
}

// MarshalJSON writes Left as left_seconds.
func (g GrantInfo) MarshalJSON() ([]byte, error) {
	type plain GrantInfo
	return json.Marshal(struct {
		plain
		Left float64 `json:"left_seconds"`
	}{plain(g), Seconds(g.Left)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (g *GrantInfo) UnmarshalJSON(b []byte) error {
	type plain GrantInfo
	w := struct {
		*plain
		Left float64 `json:"left_seconds"`
	}{plain: (*plain)(g)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	g.Left = FromSeconds(w.Left)
	return nil
}

// MarshalJSON writes Age and Interval as age_seconds and interval_seconds.
func (f FQDNInfo) MarshalJSON() ([]byte, error) {
	type plain FQDNInfo
	return json.Marshal(struct {
		plain
		Age      float64 `json:"age_seconds"`
		Interval float64 `json:"interval_seconds"`
	}{plain(f), Seconds(f.Age), Seconds(f.Interval)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *FQDNInfo) UnmarshalJSON(b []byte) error {
	type plain FQDNInfo
	w := struct {
		*plain
		Age      float64 `json:"age_seconds"`
		Interval float64 `json:"interval_seconds"`
	}{plain: (*plain)(f)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	f.Age, f.Interval = FromSeconds(w.Age), FromSeconds(w.Interval)
	return nil
}
