package daemon

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwfake"
	"github.com/dialgate/dialgate/store"
)

// parseEventLine turns one line of testdata/ami-contactstatus.txt
// ("Key: Value | Key: Value") into the message the ami client would
// deliver.
func parseEventLine(t *testing.T, line string) ami.Message {
	t.Helper()
	var m ami.Message
	for _, h := range strings.Split(line, " | ") {
		k, v, ok := strings.Cut(h, ": ")
		if !ok {
			t.Fatalf("bad header %q in %q", h, line)
		}
		m.Headers = append(m.Headers, ami.Header{Key: k, Value: v})
	}
	return m
}

// recordedEvents returns the event lines of testdata/ami-contactstatus.txt.
func recordedEvents(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "ami-contactstatus.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// recorded returns the recorded event line containing every one of the
// fragments, failing unless exactly one does.
func recorded(t *testing.T, fragments ...string) string {
	t.Helper()
	var found []string
	for _, l := range recordedEvents(t) {
		if !slices.ContainsFunc(fragments, func(f string) bool { return !strings.Contains(l, f) }) {
			found = append(found, l)
		}
	}
	if len(found) == 0 {
		t.Fatalf("no recorded event has %q", fragments)
	}
	if !slices.Equal(found[1:], slices.Repeat(found[:1], len(found)-1)) {
		t.Fatalf("several recorded events have %q: %q", fragments, found)
	}
	return found[0]
}

var (
	addr7 = netip.MustParseAddr("203.0.113.7")
	addr8 = netip.MustParseAddr("203.0.113.8")
	addr9 = netip.MustParseAddr("203.0.113.9")
)

// TestRegistrationRecorded feeds registration() every event Asterisk 20
// was recorded sending when a phone registers, moves and unregisters.
func TestRegistrationRecorded(t *testing.T) {
	cases := []struct {
		line string
		want regEvent
		ok   bool
	}{
		{"URI: sip:traveler@203.0.113.7:5062 | ContactStatus: NonQualified",
			regEvent{ext: "traveler", addr: addr7, kind: regRegistered}, true},
		{"URI: sip:traveler@203.0.113.8:5062 | ContactStatus: NonQualified",
			regEvent{ext: "traveler", addr: addr8, kind: regRegistered}, true},
		{"URI: sip:traveler@203.0.113.8:5062 | ContactStatus: Reachable",
			regEvent{ext: "traveler", addr: addr8, kind: regRegistered}, true},
		{"URI: sip:traveler@203.0.113.8:5062 | ContactStatus: Removed",
			regEvent{ext: "traveler", addr: addr8, kind: regRemoved}, true},
		{"URI: sip:traveler@203.0.113.7:5062 | ContactStatus: Removed",
			regEvent{ext: "traveler", addr: addr7, kind: regRemoved}, true},
		{"Peer: PJSIP/traveler | PeerStatus: Unreachable", regEvent{}, false},
		{"Peer: SIP/traveler | PeerStatus: Registered | Address: 203.0.113.7:5062",
			regEvent{ext: "traveler", addr: addr7, kind: regRegistered}, true},
		{"Peer: SIP/traveler | PeerStatus: Unregistered | Cause: Expired",
			regEvent{ext: "traveler", kind: regRemoved}, true},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		for _, l := range recordedEvents(t) {
			if strings.Contains(l, c.line) {
				covered[l] = true
				got, ok := registration(parseEventLine(t, l))
				if got != c.want || ok != c.ok {
					t.Errorf("%s\n got %v, %v; want %v, %v", l, got, ok, c.want, c.ok)
				}
			}
		}
	}
	for _, l := range recordedEvents(t) {
		if !covered[l] {
			t.Errorf("recorded event without an expectation: %s", l)
		}
	}
}

// TestRegistrationForms covers what the recordings do not: the statuses
// only Asterisk's documentation names, IPv6, and garbage.
func TestRegistrationForms(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::7")
	contact := func(uri, status string, more ...string) ami.Message {
		m := ami.Message{Headers: []ami.Header{{Key: "Event", Value: "ContactStatus"}, {Key: "URI", Value: uri},
			{Key: "ContactStatus", Value: status}, {Key: "AOR", Value: "traveler"}}}
		for i := 0; i+1 < len(more); i += 2 {
			m.Headers = append(m.Headers, ami.Header{Key: more[i], Value: more[i+1]})
		}
		return m
	}
	peer := func(kv ...string) ami.Message {
		m := ami.Message{Headers: []ami.Header{{Key: "Event", Value: "PeerStatus"}}}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Headers = append(m.Headers, ami.Header{Key: kv[i], Value: kv[i+1]})
		}
		return m
	}
	cases := []struct {
		name string
		ev   ami.Message
		want regEvent
		ok   bool
	}{
		{"Created (documented)", contact("sip:traveler@203.0.113.7:5062", "Created"),
			regEvent{"traveler", addr7, regRegistered}, true},
		{"Updated (documented)", contact("sip:traveler@203.0.113.7:5062", "Updated"),
			regEvent{"traveler", addr7, regRegistered}, true},
		{"EndpointName beats AOR", contact("sip:traveler@203.0.113.7", "NonQualified", "EndpointName", "201"),
			regEvent{"201", addr7, regRegistered}, true},
		{"IPv6 removed", contact("sip:traveler@[2001:db8::7]:5062;ob", "Removed"),
			regEvent{"traveler", v6, regRemoved}, true},
		{"unreachable is not an unregister", contact("sip:traveler@203.0.113.7:5062", "Unreachable"), regEvent{}, false},
		{"unknown", contact("sip:traveler@203.0.113.7:5062", "Unknown"), regEvent{}, false},
		{"hostname URI", contact("sip:traveler@phone.example:5062", "Removed"), regEvent{}, false},
		{"no name", ami.Message{Headers: []ami.Header{{Key: "Event", Value: "ContactStatus"},
			{Key: "URI", Value: "sip:x@203.0.113.7"}, {Key: "ContactStatus", Value: "Removed"}}}, regEvent{}, false},
		{"sip registered without address", peer("Peer", "SIP/traveler", "PeerStatus", "Registered"), regEvent{}, false},
		{"sip registered garbage address", peer("Peer", "SIP/traveler", "PeerStatus", "Registered", "Address", "(null)"), regEvent{}, false},
		{"sip unregistered with address", peer("Peer", "SIP/traveler", "PeerStatus", "Unregistered", "Address", "203.0.113.7:5062"),
			regEvent{"traveler", addr7, regRemoved}, true},
		{"sip unregistered null address", peer("Peer", "SIP/traveler", "PeerStatus", "Unregistered", "Address", "(null)"),
			regEvent{"traveler", netip.Addr{}, regRemoved}, true},
		{"sip unregistered no peer name", peer("Peer", "SIP/", "PeerStatus", "Unregistered"), regEvent{}, false},
		{"sip rejected", peer("Peer", "SIP/traveler", "PeerStatus", "Rejected"), regEvent{}, false},
		{"other event", ami.Message{Headers: []ami.Header{{Key: "Event", Value: "FullyBooted"}}}, regEvent{}, false},
	}
	for _, c := range cases {
		got, ok := registration(c.ev)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: got %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// testBackend is the in-memory kernel with the two questions these tests ask.
type testBackend struct{ *fwfake.Backend }

func (b testBackend) has(code int, addr netip.Addr) bool {
	for _, m := range b.Members(code) {
		if m.Prefix.Contains(addr) {
			return true
		}
	}
	return false
}

func (b testBackend) syncCount() int { return b.Calls()[fwfake.MethodSyncMembers] }

// fakeLookup answers RegisteredAddrs from a map.
type fakeLookup struct {
	addrs map[string][]netip.Addr
	err   error
	calls int
}

func (l *fakeLookup) RegisteredAddrs(_ context.Context, ext string) ([]netip.Addr, error) {
	l.calls++
	return l.addrs[ext], l.err
}

const sshCode = firewall.CodeSSH

// regTest is a Daemon on a temporary store and an in-memory kernel, with
// account "alice" (extension "traveler") holding one contact grant.
type regTest struct {
	t  *testing.T
	d  *Daemon
	fw testBackend
}

func newRegTest(t *testing.T) *regTest {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DB = filepath.Join(t.TempDir(), "dialgate.db")
	cfg.AMI.FollowReregister = true // what these tests exercise
	createDB(t, cfg.DB)
	fw := testBackend{fwfake.New()}
	d, err := New(Options{Config: cfg, Backend: fw, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.applyStored(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	fw.ResetCalls()
	rt := &regTest{t: t, d: d, fw: fw}
	rt.account("alice", "traveler")
	return rt
}

func (rt *regTest) account(name, ext string) {
	rt.t.Helper()
	err := rt.d.db.Update(func(tx store.Tx) error {
		return tx.PutAccount(store.Account{Name: name, Perms: store.NewPermSet(sshCode), Enabled: true, Extension: ext})
	})
	if err != nil {
		rt.t.Fatal(err)
	}
}

// grant stores a grant and loads the kernel from the store.
func (rt *regTest) grant(account string, ip netip.Addr, source string) store.Grant {
	rt.t.Helper()
	var g store.Grant
	err := rt.d.db.Update(func(tx store.Tx) (err error) {
		now := rt.d.now()
		g, err = tx.PutGrant(store.Grant{Account: account, IP: ip.String(), Perms: store.NewPermSet(sshCode),
			Created: now, Expires: now.Add(8 * time.Hour).Truncate(time.Second), Source: source})
		return err
	})
	if err != nil {
		rt.t.Fatal(err)
	}
	if err := rt.d.applyStored(context.Background(), false); err != nil {
		rt.t.Fatal(err)
	}
	if !rt.fw.has(sshCode, ip) {
		rt.t.Fatalf("%s not in the kernel after the grant", ip)
	}
	return g
}

func (rt *regTest) grants() map[string]store.Grant {
	rt.t.Helper()
	out := map[string]store.Grant{}
	err := rt.d.db.View(func(tx store.Tx) error {
		all, err := tx.Grants()
		for _, g := range all {
			out[g.ID] = g
		}
		return err
	})
	if err != nil {
		rt.t.Fatal(err)
	}
	return out
}

func (rt *regTest) audit() []store.AuditRecord {
	rt.t.Helper()
	var out []store.AuditRecord
	err := rt.d.db.View(func(tx store.Tx) (err error) {
		out, err = tx.AuditLog(time.Time{}, 0)
		return err
	})
	if err != nil {
		rt.t.Fatal(err)
	}
	return out
}

// feed parses a recorded event and acts on it as the AMI goroutine does.
func (rt *regTest) feed(lookup ContactLookup, line string) {
	rt.t.Helper()
	r, ok := registration(parseEventLine(rt.t, line))
	if !ok {
		rt.t.Fatalf("registration() ignores %s", line)
	}
	rt.d.onRegistration(context.Background(), lookup, r)
}

// TestFollowRegistrationNonQualified: with qualify off, Asterisk 20
// announces the new contact only as NonQualified; the grant follows it.
func TestFollowRegistrationNonQualified(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr8, "phone:contact")
	rt.feed(nil, recorded(t, "203.0.113.7:5062", "ContactStatus: NonQualified"))

	got, ok := rt.grants()[g.ID]
	if !ok || got.IP != addr7.String() || !got.Expires.Equal(g.Expires) {
		t.Fatalf("grant %s after NonQualified from %s: %+v (present %v); want it moved, same expiry", g.ID, addr7, got, ok)
	}
	if !rt.fw.has(sshCode, addr7) || rt.fw.has(sshCode, addr8) {
		t.Errorf("kernel: new address in %v, old address in %v; want true, false", rt.fw.has(sshCode, addr7), rt.fw.has(sshCode, addr8))
	}
	a := rt.audit()
	if len(a) != 1 || a[0].Action != "grant.move" || a[0].Actor != "ami" || a[0].Subject != addr7.String() {
		t.Errorf("audit: %+v; want one grant.move by ami", a)
	}
}

// TestFollowRecordedReregister replays the recorded re-registration with
// remove_existing: NonQualified for the new contact, then Removed for the
// old one. The grant ends up on the new address, alive.
func TestFollowRecordedReregister(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr8, "phone:contact")
	rt.feed(nil, recorded(t, "203.0.113.7:5062", "ContactStatus: NonQualified"))
	rt.feed(nil, recorded(t, "203.0.113.8:5062", "ContactStatus: Removed"))
	if got, ok := rt.grants()[g.ID]; !ok || got.IP != addr7.String() {
		t.Fatalf("grant after the re-registration: %+v (present %v); want it on %s", got, ok, addr7)
	}
	if !rt.fw.has(sshCode, addr7) {
		t.Error("new address not in the kernel")
	}
	for _, r := range rt.audit() {
		if r.Action == "grant.end" {
			t.Errorf("grant ended: %+v", r)
		}
	}
}

// TestContactRemovedEndsGrant: the granted contact unregisters; its grant
// ends, in the store and the kernel, audited. Grants that did not come
// from the registration stay.
func TestContactRemovedEndsGrant(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr7, "phone:contact")
	other := rt.grant("alice", addr7, "phone:channel") // same address, not from the registration
	rt.feed(nil, recorded(t, "203.0.113.7:5062", "ContactStatus: Removed"))

	all := rt.grants()
	if _, ok := all[g.ID]; ok {
		t.Fatalf("contact grant %s survived the removal of its contact", g.ID)
	}
	if _, ok := all[other.ID]; !ok {
		t.Errorf("channel grant %s ended too", other.ID)
	}
	a := rt.audit()
	if len(a) != 1 || a[0].Action != "grant.end" || a[0].Actor != "ami" || a[0].Account != "alice" ||
		a[0].Subject != addr7.String() || a[0].Result != "ok" || !strings.Contains(a[0].Detail, "traveler unregistered") ||
		!strings.Contains(a[0].Detail, g.ID) {
		t.Errorf("audit: %+v; want one grant.end by ami naming %s and the extension", a, g.ID)
	}
	if rt.fw.syncCount() != 1 {
		t.Errorf("kernel synced %d times; want 1", rt.fw.syncCount())
	}
}

// TestContactRemovedEndsGrantInKernel: with the grant its address's only
// reason to be admitted, the removal takes the address out of the kernel.
func TestContactRemovedEndsGrantInKernel(t *testing.T) {
	rt := newRegTest(t)
	rt.grant("alice", addr7, "phone:contact")
	rt.feed(nil, recorded(t, "203.0.113.7:5062", "ContactStatus: Removed"))
	if rt.fw.has(sshCode, addr7) {
		t.Fatal("the unregistered address is still admitted by the kernel")
	}
}

// TestContactRemovedOtherAddressKeepsGrant: the removal of a contact the
// grant is not for (the one it already followed away from) changes
// nothing, and asks Asterisk nothing.
func TestContactRemovedOtherAddressKeepsGrant(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr7, "phone:contact")
	syncs := rt.fw.syncCount()
	lk := &fakeLookup{}
	rt.feed(lk, recorded(t, "203.0.113.8:5062", "ContactStatus: Removed"))
	if got, ok := rt.grants()[g.ID]; !ok || got.IP != addr7.String() {
		t.Fatalf("grant after the removal of another contact: %+v (present %v)", got, ok)
	}
	if a := rt.audit(); len(a) != 0 {
		t.Errorf("audit: %+v; want none", a)
	}
	if rt.fw.syncCount() != syncs || !rt.fw.has(sshCode, addr7) {
		t.Error("the kernel was touched")
	}
	if lk.calls != 0 {
		t.Errorf("%d lookups for a removal that ends nothing", lk.calls)
	}
}

// TestRegistrationNoAccount: events for an extension no account names do
// nothing, even with a contact grant at the same address.
func TestRegistrationNoAccount(t *testing.T) {
	rt := newRegTest(t)
	rt.account("bob", "201")
	rt.account("carol", "") // no extension: must not match an empty one
	g := rt.grant("bob", addr8, "phone:contact")
	h := rt.grant("carol", addr7, "phone:contact")
	syncs := rt.fw.syncCount()
	// alice (extension traveler) has no grant; bob and carol are not
	// traveler.
	rt.feed(nil, recorded(t, "203.0.113.7:5062", "ContactStatus: NonQualified"))
	rt.feed(nil, recorded(t, "203.0.113.7:5062", "ContactStatus: Removed"))
	rt.feed(nil, recorded(t, "PeerStatus: Unregistered"))

	all := rt.grants()
	if got := all[g.ID]; got.IP != addr8.String() {
		t.Errorf("bob's grant: %+v", got)
	}
	if got := all[h.ID]; got.IP != addr7.String() {
		t.Errorf("carol's grant: %+v", got)
	}
	if a := rt.audit(); len(a) != 0 {
		t.Errorf("audit: %+v; want none", a)
	}
	if rt.fw.syncCount() != syncs {
		t.Error("the kernel was touched")
	}
}

// TestRegistrationSIPUnregisteredEndsGrant: chan_sip says Unregistered with no
// address: the peer is registered from nowhere, its contact grant ends.
func TestRegistrationSIPUnregisteredEndsGrant(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr7, "phone:contact")
	rt.feed(nil, recorded(t, "PeerStatus: Unregistered"))
	if _, ok := rt.grants()[g.ID]; ok {
		t.Fatal("contact grant survived the chan_sip unregister")
	}
	if rt.fw.has(sshCode, addr7) {
		t.Error("address still in the kernel")
	}
	if a := rt.audit(); len(a) != 1 || a[0].Action != "grant.end" || a[0].Actor != "ami" {
		t.Errorf("audit: %+v", a)
	}
}

// TestContactRemovedStillRegistered: Asterisk still has a contact for the
// extension at the grant's address (a NAT port change: new contact on
// another port, old one removed): the grant stays.
func TestContactRemovedStillRegistered(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr7, "phone:contact")
	lk := &fakeLookup{addrs: map[string][]netip.Addr{"traveler": {addr7}}}
	rt.feed(lk, recorded(t, "203.0.113.7:5062", "ContactStatus: Removed"))
	if got, ok := rt.grants()[g.ID]; !ok || got.IP != addr7.String() {
		t.Fatalf("grant ended although the extension is still registered from %s", addr7)
	}
	if a := rt.audit(); len(a) != 0 {
		t.Errorf("audit: %+v; want none", a)
	}
	if lk.calls != 1 {
		t.Errorf("%d lookups; want 1", lk.calls)
	}
}

// TestContactRemovedRegisteredElsewhere: the removal is seen before the
// new contact's event (or that event was lost): the grant follows the
// extension's one registration instead of ending.
func TestContactRemovedRegisteredElsewhere(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr7, "phone:contact")
	lk := &fakeLookup{addrs: map[string][]netip.Addr{"traveler": {addr9}}}
	rt.feed(lk, recorded(t, "203.0.113.7:5062", "ContactStatus: Removed"))
	got, ok := rt.grants()[g.ID]
	if !ok || got.IP != addr9.String() || !got.Expires.Equal(g.Expires) {
		t.Fatalf("grant: %+v (present %v); want it moved to %s", got, ok, addr9)
	}
	if !rt.fw.has(sshCode, addr9) || rt.fw.has(sshCode, addr7) {
		t.Error("kernel does not follow the move")
	}
	if a := rt.audit(); len(a) != 1 || a[0].Action != "grant.move" || a[0].Subject != addr9.String() {
		t.Errorf("audit: %+v; want one grant.move", a)
	}
}

// TestContactRemovedLookupFails: AMI cannot tell where the extension is
// registered now; the event alone decides and the grant ends.
func TestContactRemovedLookupFails(t *testing.T) {
	rt := newRegTest(t)
	g := rt.grant("alice", addr7, "phone:contact")
	lk := &fakeLookup{addrs: map[string][]netip.Addr{"traveler": {addr7}}, err: errors.New("ami: not connected")}
	rt.feed(lk, recorded(t, "203.0.113.7:5062", "ContactStatus: Removed"))
	if _, ok := rt.grants()[g.ID]; ok {
		t.Fatal("grant survived although the lookup failed")
	}
}
