package localapi

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// wireTypes are the values the LocalAPI answers with and --json prints.
func wireTypes() []any {
	return []any{
		StatusInfo{}, []AccountInfo{}, AccountInfo{}, []EntryInfo{}, []GrantInfo{}, DeleteResult{},
		[]FQDNInfo{}, []LockoutInfo{}, []ProviderInfo{}, ProviderInfo{}, []store.AuditRecord{},
		SetPasscodeResult{}, ImportResult{}, store.CheckReport{}, []string{},
	}
}

// TestWireTypesTagged: every field of every type that reaches the wire
// has an explicit lower-case snake_case json tag, and a duration is
// written by a MarshalJSON of its struct as seconds, never as Go's
// nanoseconds or "1h0m0s".
func TestWireTypesTagged(t *testing.T) {
	marshaler := reflect.TypeFor[json.Marshaler]()
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() == "time" || typ.PkgPath() == "net/netip" {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			where := path + "." + f.Name
			tag, ok := f.Tag.Lookup("json")
			name, _, _ := strings.Cut(tag, ",")
			switch {
			case f.Anonymous && !ok:
				walk(f.Type, where)
				continue
			case !ok:
				t.Errorf("%s (%s): no json tag", where, typ)
			case name == "-":
				if f.Type == reflect.TypeFor[time.Duration]() && !typ.Implements(marshaler) {
					t.Errorf("%s: a duration left out of JSON without a MarshalJSON writing it", where)
				}
				continue
			case !snakeKey.MatchString(name):
				t.Errorf("%s: json key %q is not lower-case snake_case", where, name)
			}
			if f.Type == reflect.TypeFor[time.Duration]() || f.Type == reflect.TypeFor[*time.Duration]() {
				t.Errorf("%s: time.Duration on the wire (nanoseconds); write seconds in a key ending _seconds", where)
			}
			walk(f.Type, where)
		}
	}
	for _, v := range wireTypes() {
		walk(reflect.TypeOf(v), reflect.TypeOf(v).String())
	}
}

// TestWireJSON: zero and filled values of every wire type, as the daemon
// encodes them, follow the rules, and read back to what was sent.
func TestWireJSON(t *testing.T) {
	now := time.Date(2026, 12, 1, 18, 0, 0, 0, time.FixedZone("CET", 3600))
	filled := []any{
		StatusInfo{Accounts: []AccountInfo{{Name: "alice", Perms: store.NewPermSet(1, 8), Lifetime: 4 * time.Hour, Created: now}},
			Grants:        []GrantInfo{{ID: "g1", Left: 90 * time.Minute, Expires: now}},
			Entries:       []EntryInfo{{ID: "e1", Kind: store.KindFQDN, Created: now}},
			Firewall:      firewall.Status{Families: []firewall.FamilyStatus{{Family: "ipv4"}}, Sets: []firewall.SetStatus{{Name: "s", Exists: true, Entries: []firewall.SetEntry{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Timeout: 8 * time.Hour}}}}},
			PendingReload: &PendingReload{Deadline: now, Left: 60}, Time: now},
		[]FQDNInfo{{Name: "a.example", Age: time.Minute, Interval: 5 * time.Minute, LastSuccess: now}},
		[]store.AuditRecord{{Time: now, Action: "grant", Actor: "phone", Account: "alice"}},
		[]ProviderInfo{{Provider: auth.Provider{Name: "x", Services: []int{1}}}},
		DeleteResult{Entries: []EntryInfo{{ID: "e1"}}},
	}
	for _, v := range append(wireTypes(), filled...) {
		b, err := json.Marshal(EmptyLists(v))
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, bad := range CheckJSON(reflect.TypeOf(v).String(), doc) {
			t.Errorf("%s\n%s", bad, b)
		}
	}
	st := filled[0].(StatusInfo)
	b, _ := json.Marshal(st)
	var back StatusInfo
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Accounts[0].Lifetime != 4*time.Hour || back.Grants[0].Left != 90*time.Minute ||
		back.Firewall.Sets[0].Entries[0].Timeout != 8*time.Hour || !back.Time.Equal(now) {
		t.Errorf("round trip lost durations or times: %+v", back)
	}
	for _, want := range []string{`"lifetime_seconds":14400`, `"left_seconds":5400`, `"timeout_seconds":28800`, `"time":"2026-12-01T18:00:00+01:00"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s:\n%s", want, b)
		}
	}
	var fs []FQDNInfo
	b, _ = json.Marshal(filled[1])
	if err := json.Unmarshal(b, &fs); err != nil || fs[0].Age != time.Minute || fs[0].Interval != 5*time.Minute {
		t.Errorf("fqdn round trip: %v %+v\n%s", err, fs, b)
	}
}

// TestEmptyLists: nil lists, nested too, become [], and the value given
// is left as it was.
func TestEmptyLists(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"nil slice", []string(nil), `[]`},
		{"struct", DeleteResult{}, `{"entries":[]}`},
		{"nested", []ProviderInfo{{Provider: auth.Provider{Name: "x"}}}, `[{"name":"x","title":"","services":[],"enabled":false,"entries":0}]`},
		{"pointer", &SetPasscodeResult{Number: "1"}, `{"number":"1"}`},
		{"nil", nil, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(EmptyLists(tc.in))
			if err != nil || string(b) != tc.want {
				t.Errorf("got %s (%v), want %s", b, err, tc.want)
			}
		})
	}
	orig := []ProviderInfo{{Provider: auth.Provider{Name: "x"}}}
	EmptyLists(orig)
	if orig[0].Services != nil {
		t.Error("EmptyLists changed its argument")
	}
}
