package daemon

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

func TestDesiredState(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "d.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	err = db.Update(func(tx store.Tx) error {
		for _, a := range []store.Account{
			{Name: "alice", Perms: store.NewPermSet(1, 8), Enabled: true},
			{Name: "off", Perms: store.NewPermSet(0), Enabled: false},
		} {
			if err := tx.CreateAccount(a); err != nil {
				return err
			}
		}
		for _, e := range []store.Entry{
			{Account: "alice", Kind: store.KindIP, Value: "203.0.113.7"},
			{Account: "alice", Kind: store.KindCIDR, Value: "198.51.100.0/24", Perms: store.NewPermSet(4)},
			{Account: "alice", Kind: store.KindFQDN, Value: "home.example.org"},
			{Account: "alice", Kind: store.KindFQDN, Value: "never.example.org"},
			{Account: "off", Kind: store.KindIP, Value: "203.0.113.99"},
		} {
			if _, err := tx.AddEntry(e); err != nil {
				return err
			}
		}
		if err := tx.PutFQDN(store.FQDNRecord{Name: "home.example.org", Addrs: []string{"192.0.2.5", "2001:db8::5"}}); err != nil {
			return err
		}
		for _, g := range []store.Grant{
			{Account: "alice", IP: "192.0.2.77", Perms: store.NewPermSet(1), Expires: now.Add(time.Hour)},
			{Account: "alice", IP: "192.0.2.78", Perms: store.NewPermSet(1), Expires: now.Add(-time.Second)},
		} {
			if _, err := tx.PutGrant(g); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var st firewall.State
	err = db.View(func(tx store.Tx) (err error) {
		st, err = desiredState(tx, firewall.DefaultConfig(), now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix
	want := map[int]map[netip.Prefix]time.Duration{
		1: {p("203.0.113.7/32"): 0, p("192.0.2.5/32"): 0, p("2001:db8::5/128"): 0, p("192.0.2.77/32"): time.Hour},
		4: {p("198.51.100.0/24"): 0},
		8: {p("203.0.113.7/32"): 0, p("192.0.2.5/32"): 0, p("2001:db8::5/128"): 0},
	}
	for code := 0; code < firewall.NumCodes; code++ {
		got, exp := st.Sets[code], want[code]
		if len(got) != len(exp) {
			t.Errorf("code %d: got %v, want %v", code, got, exp)
			continue
		}
		for pfx, d := range exp {
			if g, ok := got[pfx]; !ok || g != d {
				t.Errorf("code %d: %s: got %v (present %v), want %v", code, pfx, g, ok, d)
			}
		}
	}
}

func TestGuard(t *testing.T) {
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	admin := netip.MustParseAddr("203.0.113.9")
	with := firewall.State{Config: cfg}
	with.Add(firewall.CodeSSH, netip.PrefixFrom(admin, 32), 0)
	without := firewall.State{Config: cfg}
	g := Guard{SSH: netip.AddrPortFrom(admin, 22)}
	if err := g.check(with, without); err == nil {
		t.Error("removing the SSH client's access was not refused")
	}
	if err := g.check(without, without); err != nil {
		t.Errorf("a session the firewall never admitted blocks every change: %v", err)
	}
	if err := (Guard{SSH: g.SSH, Force: true}).check(with, without); err != nil {
		t.Errorf("--force did not override: %v", err)
	}
	if err := (Guard{SSH: netip.AddrPortFrom(admin, 2222)}).check(with, without); err != nil {
		t.Errorf("SSH on a port dialgate does not guard: %v", err)
	}
}
