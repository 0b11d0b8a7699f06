package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// Explain on the fake backend: every kind of match, in one store, and
// the kernel check catching a set emptied behind dialgate's back.
func TestExplainLogic(t *testing.T) {
	ctx := context.Background()
	wt := newWDTest(t, "fake") // alice (8) holds fwtest.ClientV4
	fw := wt.fw.(*fwfake.Backend)
	d := wt.d
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.AddAccount(ctx, localapi.AddAccountRequest{Name: "bob", Perms: "1,2"}))
	must(d.AddEntry(ctx, localapi.AddEntryRequest{Account: "bob", Kind: store.KindCIDR, Value: "203.0.113.0/24"}))
	must(d.AddAccount(ctx, localapi.AddAccountRequest{Name: "carol", Perms: "9"}))
	must(d.AddEntry(ctx, localapi.AddEntryRequest{Account: "carol", Kind: store.KindIP, Value: fwtest.ClientV4.String()}))
	must(d.UpdateAccount(ctx, "carol", localapi.UpdateAccountRequest{Enabled: ptr(false)}, Guard{}))
	must(d.Grant(ctx, GrantRequest{Account: "alice", IP: fwtest.ClientV4, Source: "test"}))
	// An FQDN entry whose last-known address is the client.
	err := d.db.Update(func(tx store.Tx) error {
		if _, err := tx.AddEntry(store.Entry{Account: "bob", Kind: store.KindFQDN, Value: "home.dyndns.example"}); err != nil {
			return err
		}
		return tx.PutFQDN(store.FQDNRecord{Name: "home.dyndns.example", Addrs: []string{fwtest.ClientV4.String()}, LastSuccess: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	must(nil, d.applyStored(ctx, false))

	ex, err := d.Explain(ctx, localapi.ExplainRequest{Addr: fwtest.ClientV4.String()})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]string{}
	for _, v := range ex.Verdicts {
		by[v.Service] = strings.Join(v.By, "; ")
		if v.Admitted != (v.Service == "ssh" || v.Service == "sip-udp" || v.Service == "sip-tcp") {
			t.Errorf("%s admitted=%v: %v", v.Service, v.Admitted, v.By)
		}
	}
	for svc, want := range map[string][]string{
		"ssh":     {"entry e", "of alice: " + fwtest.ClientV4.String(), "grant g", "of alice ("},
		"sip-udp": {"of bob: 203.0.113.0/24", "of bob: home.dyndns.example -> " + fwtest.ClientV4.String()},
		"fop":     {"nothing admits it"}, // carol's entry: account disabled
	} {
		for _, w := range want {
			if !strings.Contains(by[svc], w) {
				t.Errorf("%s: %q lacks %q", svc, by[svc], w)
			}
		}
	}
	var inactive int
	for _, m := range ex.Matches {
		if !m.Active {
			inactive++
			if m.Account != "carol" || !strings.Contains(m.Why, "disabled") {
				t.Errorf("inactive match: %+v", m)
			}
		}
	}
	if len(ex.Matches) != 5 || inactive != 1 {
		t.Errorf("matches: %+v", ex.Matches)
	}
	if !ex.KernelChecked || !ex.KernelAgrees {
		t.Errorf("kernel before tampering: %+v", ex.Disagreements)
	}

	// Someone empties the SSH set; no watchdog runs in this test.
	fw.QuietTamper(true)
	fw.FlushSet(firewall.CodeSSH)
	ex, err = d.Explain(ctx, localapi.ExplainRequest{Addr: fwtest.ClientV4.String(), Proto: "tcp", Port: 22})
	if err != nil {
		t.Fatal(err)
	}
	if ex.KernelAgrees || len(ex.Disagreements) != 1 || !strings.Contains(ex.Disagreements[0], "ssh") {
		t.Errorf("after the flush: agrees=%v %v", ex.KernelAgrees, ex.Disagreements)
	}
	// LAN and loopback.
	for addr, want := range map[string]string{"10.1.2.3": "LAN range 10.0.0.0/8", "127.0.0.1": "loopback"} {
		ex, err := d.Explain(ctx, localapi.ExplainRequest{Addr: addr, Proto: "tcp", Port: 22})
		if err != nil || !ex.Verdicts[0].Admitted || ex.Verdicts[0].By[0] != want {
			t.Errorf("%s: %+v %v", addr, ex.Verdicts, err)
		}
	}
	for _, bad := range []localapi.ExplainRequest{{Addr: "nope"}, {Addr: "192.0.2.1", Proto: "icmp", Port: 1}} {
		if _, err := d.Explain(ctx, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Listing accounts reads the database only: it works while the kernel
// cannot be read.
func TestAccountsWithoutKernel(t *testing.T) {
	wt := newWDTest(t, "fake")
	wt.fw.(*fwfake.Backend).FailAlways(fwfake.MethodStatus, errKernel)
	as, err := wt.d.Accounts()
	if err != nil || len(as) != 1 || as[0].Name != "alice" || as[0].Entries != 1 {
		t.Fatalf("accounts: %+v %v", as, err)
	}
	if _, err := wt.d.Status(context.Background()); err == nil {
		t.Fatal("status should fail when the kernel cannot be read")
	}
}

var errKernel = errors.New("kernel unreadable")
