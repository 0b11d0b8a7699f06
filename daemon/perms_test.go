package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// TestEntryPermsWithinAccount: an entry's own perms stay within its
// account's unless forced (account 0 covers anything); a refused entry
// leaves the store and the kernel as they were.
func TestEntryPermsWithinAccount(t *testing.T) {
	dt := newDoorTest(t)
	ctx := context.Background()
	dt.account("bob", "1,8", "48151623")
	dt.account("ops", "0", "11112222")
	hotel := netip.MustParseAddr("203.0.113.7")
	before := dt.fw.State()
	for _, c := range []struct {
		perms string
		is    error
		msg   string
	}{
		{"9", auth.ErrNeedsForce, `account "bob"`},
		{"1,9", auth.ErrNeedsForce, "perms 1,8"},
		{"0", auth.ErrNeedsForce, "--force"},
		{"99999999999", auth.ErrInvalid, `"99999999999"`},
		{"10", auth.ErrInvalid, `"10"`},
		{"1,0", auth.ErrInvalid, "0 already means all"},
	} {
		_, err := dt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "bob", Kind: store.KindIP, Value: hotel.String(), Perms: c.perms})
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("perms %q: %v; want %v with %q", c.perms, err, c.is, c.msg)
		}
	}
	if after := dt.fw.State(); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused entries changed the kernel:\n%+v\n%+v", before, after)
	}
	if es, _ := dt.d.Status(ctx); len(es.Entries) != 0 {
		t.Fatalf("refused entries stored: %+v", es.Entries)
	}
	if _, err := dt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "bob", Kind: store.KindIP, Value: hotel.String(), Perms: "1"}); err != nil {
		t.Fatalf("narrower entry: %v", err)
	}
	if _, err := dt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "ops", Kind: store.KindIP, Value: "203.0.113.8", Perms: "9"}); err != nil {
		t.Fatalf("account 0 covers code 9: %v", err)
	}
	if _, err := dt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "bob", Kind: store.KindIP, Value: "203.0.113.9", Perms: "9", Force: true}); err != nil {
		t.Fatalf("forced entry: %v", err)
	}
	if !dt.fw.Admits(netip.MustParseAddr("203.0.113.9"), "tcp", 4445) {
		t.Error("the forced entry does not admit FOP")
	}
	if dt.fw.Admits(hotel, "tcp", 22) {
		t.Error("the perms-1 entry admits SSH")
	}
}

// TestAccountPermsNarrowing: narrowing an account below an entry's own
// perms would leave that entry open; it is refused naming the entry,
// unless forced.
func TestAccountPermsNarrowing(t *testing.T) {
	dt := newDoorTest(t)
	ctx := context.Background()
	dt.account("alice", "1,8", "48151623")
	e, err := dt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: "203.0.113.7", Perms: "8"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dt.d.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: "203.0.113.8"}); err != nil {
		t.Fatal(err)
	}
	one := "1"
	_, err = dt.d.UpdateAccount(ctx, "alice", localapi.UpdateAccountRequest{Perms: &one}, Guard{})
	if !errors.Is(err, auth.ErrNeedsForce) || !strings.Contains(err.Error(), e.ID+" 203.0.113.7") || strings.Contains(err.Error(), "203.0.113.8") {
		t.Fatalf("narrowing below entry %s: %v", e.ID, err)
	}
	if as, _ := dt.d.Status(ctx); as.Accounts[0].Perms.String() != "1,8" {
		t.Fatalf("refused narrowing stored perms %s", as.Accounts[0].Perms)
	}
	wider := "1,2,8"
	if _, err := dt.d.UpdateAccount(ctx, "alice", localapi.UpdateAccountRequest{Perms: &wider}, Guard{}); err != nil {
		t.Fatalf("widening: %v", err)
	}
	bad := "10"
	if _, err := dt.d.UpdateAccount(ctx, "alice", localapi.UpdateAccountRequest{Perms: &bad}, Guard{}); !errors.Is(err, auth.ErrInvalid) {
		t.Fatalf("perms 10: %v", err)
	}
	if _, err := dt.d.UpdateAccount(ctx, "alice", localapi.UpdateAccountRequest{Perms: &one}, Guard{Force: true}); err != nil {
		t.Fatalf("forced narrowing: %v", err)
	}
}

// TestImportPerms: imported codes follow the typed rules and entries stay
// within their account; one bad value refuses the whole import.
func TestImportPerms(t *testing.T) {
	dt := newDoorTest(t)
	ctx := context.Background()
	dt.account("kept", "1", "48151623")
	entry := func(perms ...int) []localapi.ImportEntry {
		return []localapi.ImportEntry{{Kind: store.KindIP, Value: "203.0.113.7", Perms: perms}}
	}
	for _, c := range []struct {
		acct localapi.ImportAccount
		msg  string
	}{
		{localapi.ImportAccount{Name: "new", Perms: []int{1}, Entries: entry(9)}, "wider than the account's perms 1"},
		{localapi.ImportAccount{Name: "kept", Perms: []int{1, 9}, Entries: entry(9)}, "wider than the account's perms 1"},
		{localapi.ImportAccount{Name: "new", Perms: []int{10}}, `"10"`},
		{localapi.ImportAccount{Name: "new", Perms: []int{0, 1}}, "0 already means all"},
		{localapi.ImportAccount{Name: "new", Perms: []int{1}, Entries: entry(1, 1)}, "twice"},
	} {
		_, err := dt.d.Import(ctx, localapi.ImportRequest{Source: "test", Accounts: []localapi.ImportAccount{c.acct}})
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("import %+v: %v; want %q", c.acct, err, c.msg)
		}
	}
	if st, _ := dt.d.Status(ctx); len(st.Accounts) != 1 || len(st.Entries) != 0 {
		t.Fatalf("refused imports stored something: %+v %+v", st.Accounts, st.Entries)
	}
	res, err := dt.d.Import(ctx, localapi.ImportRequest{Source: "test", Accounts: []localapi.ImportAccount{
		{Name: "new", Perms: []int{0}, Entries: entry(9)},
		{Name: "kept", Entries: []localapi.ImportEntry{{Kind: store.KindIP, Value: "203.0.113.8"}}},
	}})
	if err != nil || len(res.Added) != 2 {
		t.Fatalf("import within the accounts: %+v, %v", res, err)
	}
}

// TestProvidersWithinAccount: a provider's services are entries of the
// providers account and stay within its perms.
func TestProvidersWithinAccount(t *testing.T) {
	dt := newDoorTest(t)
	ctx := context.Background()
	if _, err := dt.d.AddAccount(ctx, localapi.AddAccountRequest{Name: ProvidersAccount, Perms: "3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dt.d.AddProvider(ctx, auth.Provider{Name: "acme", CIDRs: []string{"198.51.100.0/28"}, Services: []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dt.d.EnableProviders(ctx, []string{"acme"}, false); err == nil || !strings.Contains(err.Error(), `provider "acme"`) {
		t.Fatalf("provider wider than its account: %v", err)
	}
	all := "1,2,3"
	if _, err := dt.d.UpdateAccount(ctx, ProvidersAccount, localapi.UpdateAccountRequest{Perms: &all}, Guard{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dt.d.EnableProviders(ctx, []string{"acme"}, false); err != nil {
		t.Fatal(err)
	}
}

// TestLocalAPIPerms: a raw JSON request cannot bypass the checks the CLI
// relies on: malformed perms and entry perms wider than the account's are
// refused by the daemon itself.
func TestLocalAPIPerms(t *testing.T) {
	dt := newDoorTest(t)
	dt.account("bob", "1", "48151623")
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: dt.d.Handler(), ConnContext: withPeer}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	before := dt.fw.State()
	for _, c := range []struct {
		method, path, body, code, msg string
	}{
		{"POST", "/v1/accounts", `{"name":"eve","perms":"10"}`, "invalid", `"10"`},
		{"POST", "/v1/accounts", `{"name":"eve","perms":"99999999999"}`, "invalid", `"99999999999"`},
		{"POST", "/v1/entries", `{"account":"bob","kind":"ip","value":"203.0.113.7","perms":"99999999999"}`, "invalid", `"99999999999"`},
		{"POST", "/v1/entries", `{"account":"bob","kind":"ip","value":"203.0.113.7","perms":"9"}`, "force", "wider than"},
		{"POST", "/v1/entries", `{"account":"bob","kind":"ip","value":"203.0.113.7","perms":"0"}`, "force", "wider than"},
		{"PATCH", "/v1/accounts/bob", `{"perms":"12"}`, "invalid", `"12"`},
		{"POST", "/v1/import", `{"source":"x","accounts":[{"name":"eve","perms":[1],"entries":[{"kind":"ip","value":"203.0.113.7","perms":[9]}]}]}`, "invalid", "wider than"},
	} {
		req, err := http.NewRequest(c.method, "http://dialgate"+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body localapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || string(body.Code) != c.code || !strings.Contains(body.Error, c.msg) {
			t.Errorf("%s %s %s: %d %+v; want 400 %s with %q", c.method, c.path, c.body, resp.StatusCode, body, c.code, c.msg)
		}
	}
	if after := dt.fw.State(); !reflect.DeepEqual(before, after) {
		t.Fatal("refused requests changed the kernel")
	}
	st, _ := dt.d.Status(context.Background())
	if len(st.Accounts) != 1 || len(st.Entries) != 0 || fmt.Sprint(st.Accounts[0].Perms) != "1" {
		t.Fatalf("refused requests stored something: %+v %+v", st.Accounts, st.Entries)
	}
}
