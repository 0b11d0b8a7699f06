package daemon

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// Recorded Asterisk 20 events (ami/testdata/security/), as one line each.
const (
	sipRegistered   = "Event: PeerStatus | Privilege: system,all | ChannelType: SIP | Peer: SIP/traveler | PeerStatus: Registered | Address: 203.0.113.7:5062"
	sipUnregistered = "Event: PeerStatus | Privilege: system,all | ChannelType: SIP | Peer: SIP/traveler | PeerStatus: Unregistered | Cause: Expired"
	sipAuthOK       = "Event: SuccessfulAuth | Privilege: security,all | Severity: Informational | Service: SIP | EventVersion: 1 | AccountID: traveler | LocalAddress: IPV4/UDP/203.0.113.1/5060 | RemoteAddress: IPV4/UDP/203.0.113.7/5062 | UsingPassword: 1"
	pjsipAuthOther  = "Event: SuccessfulAuth | Privilege: security,all | Severity: Informational | Service: PJSIP | EventVersion: 1 | AccountID: traveler | LocalAddress: IPV4/UDP/203.0.113.1/5060 | RemoteAddress: IPV4/UDP/203.0.113.77/5062 | UsingPassword: 1"
)

func (rt *regTest) responsive(grant string) {
	cfg := rt.d.config()
	cfg.AMI.FollowReregister = false
	cfg.Responsive = ResponsiveConfig{Enabled: true, Grant: grant, GrantFor: Duration{time.Hour}}
	rt.d.cfg.Store(&cfg)
}

func (rt *regTest) security(line string) {
	rt.t.Helper()
	ev, ok := ami.ParseSecurityEvent(parseEventLine(rt.t, line))
	if !ok {
		rt.t.Fatalf("not a security event: %s", line)
	}
	rt.d.onAuth(context.Background(), ev)
}

func registerGrants(rt *regTest) []store.Grant {
	var out []store.Grant
	for _, g := range rt.grants() {
		if g.Source == registrationSource {
			out = append(out, g)
		}
	}
	return out
}

func TestRegistrationGrant(t *testing.T) {
	rt := newRegTest(t) // alice, perms 8, extension "traveler"
	rt.responsive("sip")
	phone := netip.MustParseAddr("203.0.113.7")
	rt.feed(nil, sipRegistered)
	gs := registerGrants(rt)
	if len(gs) != 1 || gs[0].IP != phone.String() || gs[0].Perms != store.NewPermSet(firewall.CodeSIPUDP, firewall.CodeSIPTCP) {
		t.Fatalf("registration grants: %+v", gs)
	}
	if left := time.Until(gs[0].Expires); left < 59*time.Minute || left > time.Hour {
		t.Errorf("grant for %v, want 1h", left)
	}
	if !rt.fw.has(firewall.CodeSIPUDP, phone) || rt.fw.has(sshCode, phone) {
		t.Error("kernel: want SIP only for the registered phone")
	}
	first := gs[0]

	// A re-registration's SuccessfulAuth renews it; an authenticated
	// request from elsewhere (a pjsip INVITE) creates nothing.
	rt.d.now = func() time.Time { return time.Now().Add(30 * time.Minute) }
	rt.security(sipAuthOK)
	rt.security(pjsipAuthOther)
	gs = registerGrants(rt)
	if len(gs) != 1 || gs[0].ID != first.ID || !gs[0].Expires.After(first.Expires.Add(20*time.Minute)) {
		t.Errorf("after SuccessfulAuth: %+v (first expired %v)", gs, first.Expires)
	}
	rt.d.now = time.Now

	// Unregistering ends it, in the kernel too.
	rt.feed(nil, sipUnregistered)
	if gs := registerGrants(rt); len(gs) != 0 {
		t.Errorf("after unregister: %+v", gs)
	}
	if rt.fw.has(firewall.CodeSIPUDP, phone) {
		t.Error("the unregistered phone is still admitted")
	}
	var recs []string
	for _, r := range rt.audit() {
		recs = append(recs, r.Action+":"+r.Actor)
	}
	if s := strings.Join(recs, " "); !strings.Contains(s, "grant:phone:register") || !strings.Contains(s, "grant.renew:phone:register") {
		t.Errorf("audit: %s", s)
	}
}

func TestRegistrationGrantLimits(t *testing.T) {
	phone := netip.MustParseAddr("203.0.113.7")
	t.Run("off", func(t *testing.T) {
		rt := newRegTest(t)
		rt.feed(nil, sipRegistered)
		if gs := registerGrants(rt); len(gs) != 0 {
			t.Errorf("responsive off: %+v", gs)
		}
	})
	t.Run("unbound extension", func(t *testing.T) {
		rt := newRegTest(t)
		rt.responsive("sip")
		rt.feed(nil, strings.Replace(sipRegistered, "SIP/traveler", "SIP/stranger", 1))
		if gs := registerGrants(rt); len(gs) != 0 {
			t.Errorf("an extension bound to no account got %+v", gs)
		}
	})
	t.Run("account perms", func(t *testing.T) {
		rt := newRegTest(t)
		rt.responsive("account")
		rt.feed(nil, sipRegistered)
		if gs := registerGrants(rt); len(gs) != 1 || gs[0].Perms != store.NewPermSet(sshCode) {
			t.Errorf("grant = account: %+v", gs)
		}
	})
	t.Run("chan_pjsip", func(t *testing.T) {
		rt := newRegTest(t)
		rt.responsive("sip")
		rt.feed(nil, "Event: ContactStatus | Privilege: system,all | URI: sip:traveler@203.0.113.7:5062 | ContactStatus: NonQualified | AOR: traveler | EndpointName: traveler | RoundtripUsec: 0")
		if gs := registerGrants(rt); len(gs) != 1 || gs[0].IP != phone.String() {
			t.Fatalf("pjsip registration: %+v", gs)
		}
		rt.feed(nil, "Event: ContactStatus | Privilege: system,all | URI: sip:traveler@203.0.113.7:5062 | ContactStatus: Removed | AOR: traveler | EndpointName: traveler | RoundtripUsec: 0")
		if gs := registerGrants(rt); len(gs) != 0 {
			t.Errorf("after Removed: %+v", gs)
		}
	})
	t.Run("IPv6", func(t *testing.T) {
		rt := newRegTest(t)
		rt.responsive("sip")
		rt.feed(nil, strings.Replace(sipRegistered, "203.0.113.7:5062", "[2001:db8::7]:5062", 1))
		if gs := registerGrants(rt); len(gs) != 1 || gs[0].IP != "2001:db8::7" || !rt.fw.has(firewall.CodeSIPUDP, netip.MustParseAddr("2001:db8::7")) {
			t.Errorf("IPv6 registration: %+v", gs)
		}
	})
	t.Run("a door grant is not narrowed", func(t *testing.T) {
		rt := newRegTest(t)
		rt.responsive("sip")
		door := rt.grant("alice", phone, "phone:channel")
		rt.feed(nil, sipRegistered)
		g := rt.grants()[door.ID]
		if g.Perms != store.NewPermSet(sshCode) || g.Source != "phone:channel" || len(registerGrants(rt)) != 0 {
			t.Errorf("door grant after the registration: %+v, register grants %+v", g, registerGrants(rt))
		}
	})
}

// syncClock records when the kernel last took a change: the grant is in
// the kernel when SyncMembers returns, before the store commits.
type syncClock struct {
	firewall.Backend
	at time.Time
}

func (s *syncClock) SyncMembers(ctx context.Context, want firewall.State, ps []netip.Prefix) error {
	err := s.Backend.SyncMembers(ctx, want, ps)
	s.at = time.Now()
	return err
}

// BenchmarkRegistrationGrant measures, per backend, the time from a
// registration event reaching the daemon to the kernel holding the
// grant (kernel-ms: when the kernel sync returns, inside the store
// transaction) and to the grant being committed too (done-ms: after the
// fsync), p50 and p99 over 200 registrations from distinct addresses,
// then checks with a real packet that the last one is admitted.
func BenchmarkRegistrationGrant(b *testing.B) {
	for _, kind := range backendKinds {
		b.Run(kind, func(b *testing.B) {
			for b.Loop() {
				wt := newWDTest(b, kind)
				cfg := wt.d.config()
				cfg.Responsive = ResponsiveConfig{Enabled: true, Grant: "account", GrantFor: Duration{time.Hour}}
				cfg.Door.MaxGrants = 1000
				wt.d.cfg.Store(&cfg)
				if _, err := wt.d.UpdateAccount(context.Background(), "alice", localapi.UpdateAccountRequest{Extension: ptr("traveler")}, Guard{}); err != nil {
					b.Fatal(err)
				}
				clock := &syncClock{Backend: wt.d.fw}
				wt.d.fw = clock
				const n = 200
				var kernel, done []time.Duration
				for i := 0; i < n; i++ {
					addr := netip.AddrFrom4([4]byte{11, 1, byte(i >> 8), byte(i)})
					if i == n-1 {
						addr = fwtest.OtherV4
					}
					start := time.Now()
					wt.d.onRegistration(context.Background(), nil, regEvent{ext: "traveler", addr: addr, kind: regRegistered})
					done = append(done, time.Since(start))
					kernel = append(kernel, clock.at.Sub(start))
				}
				if wt.lab != nil && !wt.reaches(fwtest.OtherV4) {
					b.Fatal("the registered address is not admitted by the kernel")
				}
				for _, x := range []struct {
					name string
					ds   []time.Duration
				}{{"kernel", kernel}, {"done", done}} {
					slices.Sort(x.ds)
					b.ReportMetric(float64(x.ds[n/2].Microseconds())/1000, x.name+"-p50-ms")
					b.ReportMetric(float64(x.ds[n*99/100].Microseconds())/1000, x.name+"-p99-ms")
				}
			}
		})
	}
}
