package firewall_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// Second strangers, added to the lab's client side by addStrangers: the
// burst checks spend OtherV4's and OtherV6's allowance.
var (
	stranger2V4 = netip.MustParseAddr("203.0.113.21")
	stranger2V6 = netip.MustParseAddr("2001:db8::21")
)

func addStrangers(t testing.TB, lab *fwtest.Lab) {
	t.Helper()
	for _, a := range [][]string{
		{"ip", "addr", "add", stranger2V4.String() + "/24", "dev", "veth-c"},
		{"ip", "-6", "addr", "add", stranger2V6.String() + "/64", "dev", "veth-c", "nodad"},
	} {
		if _, err := lab.Exec(lab.Client, a...); err != nil {
			t.Fatal(err)
		}
	}
}

// sipSock is a UDP socket in the lab's client namespace: one flow, so
// that conntrack sees every datagram it sends as one connection.
type sipSock struct {
	t *testing.T
	c net.Conn
}

func dialSIP(t *testing.T, lab *fwtest.Lab, src, dst netip.Addr) *sipSock {
	t.Helper()
	var c net.Conn
	err := fwtest.Do(lab.Client, func() (err error) {
		d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err = d.Dial("udp", netip.AddrPortFrom(dst, 5060).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sipSock{t, c}
}

// send sends msgs back to back, then collects echoes until wait passes
// without one, and returns how many came back.
func (s *sipSock) send(wait time.Duration, msgs ...[]byte) int {
	s.t.Helper()
	for _, m := range msgs {
		if _, err := s.c.Write(m); err != nil {
			s.t.Fatal(err)
		}
	}
	n := 0
	buf := make([]byte, 4096)
	for {
		s.c.SetReadDeadline(time.Now().Add(wait))
		if _, err := s.c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return n
			}
			s.t.Fatal(err)
		}
		n++
	}
}

// passes sends one message and reports whether its echo came back.
func (s *sipSock) passes(method string) bool {
	s.t.Helper()
	return s.send(probeTimeout, sipMessage(method, "pbx.example.org")) == 1
}

func registers(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = append(sipMessage("REGISTER", "pbx.example.org"), fmt.Sprintf("%d", i)...)
	}
	return out
}

func responsiveState(on bool) firewall.State {
	cfg := firewall.DefaultConfig()
	cfg.LAN = nil
	cfg.Responsive = firewall.ResponsiveConfig{Enabled: on, PerMinute: 6, Burst: 3}
	st := firewall.State{Config: cfg}
	st.Add(firewall.CodeSIPUDP, host(fwtest.ClientV4), 0)
	st.Add(firewall.CodeSIPUDP, host(fwtest.ClientV6), 0)
	return st
}

func verifyClean(t *testing.T, lab *fwtest.Lab, b firewall.Backend, st firewall.State) {
	t.Helper()
	in(t, lab, func() error {
		d, err := b.Verify(context.Background(), st)
		if err == nil && !d.OK() {
			t.Errorf("Verify: %s", d)
		}
		return err
	})
}

// TestResponsiveSIP sends real SIP datagrams from strangers with
// responsive SIP on (6 a minute, burst 3): their REGISTERs pass up to
// the burst, INVITE and OPTIONS never, not even on a flow whose REGISTER
// the server answered (the connmark keeps it out of the established
// accept) until the stranger is whitelisted; whitelisted sources are
// not limited; with responsive SIP off a stranger's REGISTER is dropped.
func TestResponsiveSIP(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		addStrangers(t, lab)
		b := bk.new(t, lab)
		lab.Echo(t, "udp", 5060)
		st := responsiveState(true)
		in(t, lab, func() error { return b.Apply(context.Background(), st) })
		verifyClean(t, lab, b, st)

		for _, fam := range []struct {
			name                   string
			server, client, s1, s2 netip.Addr
		}{
			{"v4", fwtest.ServerV4, fwtest.ClientV4, fwtest.OtherV4, stranger2V4},
			{"v6", fwtest.ServerV6, fwtest.ClientV6, fwtest.OtherV6, stranger2V6},
		} {
			t.Run(fam.name, func(t *testing.T) {
				// A flood of 8 REGISTERs: the burst passes, the rest is
				// dropped; the stranger's other requests never pass.
				s1 := dialSIP(t, lab, fam.s1, fam.server)
				if n := s1.send(500*time.Millisecond, registers(8)...); n != 3 {
					t.Errorf("stranger's 8 REGISTERs: %d echoed, want 3", n)
				}
				if s1.passes("REGISTER") {
					t.Error("stranger's REGISTER over the rate passed")
				}
				for _, m := range []string{"INVITE", "OPTIONS"} {
					if dialSIP(t, lab, fam.s2, fam.server).passes(m) {
						t.Errorf("stranger's %s passed", m)
					}
				}
				// A REGISTER the server answers makes the flow ESTABLISHED;
				// an INVITE on it is still dropped.
				s2 := dialSIP(t, lab, fam.s2, fam.server)
				if !s2.passes("REGISTER") {
					t.Fatal("stranger's first REGISTER dropped")
				}
				for _, m := range []string{"INVITE", "OPTIONS", "ACK"} {
					if s2.passes(m) {
						t.Errorf("stranger's %s on its answered REGISTER's flow passed", m)
					}
				}
				// "REGISTER " must open the datagram: elsewhere it does not
				// count (this would spend the last of the burst).
				for _, msg := range [][]byte{
					append([]byte(" "), sipMessage("REGISTER", "pbx.example.org")...),
					sipMessage("OPTIONS", "x REGISTER sip:pbx.example.org"),
				} {
					if s2.send(probeTimeout, msg) != 0 {
						t.Errorf("stranger's %.20q passed", msg)
					}
				}
				if !s2.passes("REGISTER") {
					t.Error("stranger's second REGISTER (within the burst) on its flow dropped")
				}
				// The whitelisted source is not limited.
				c := dialSIP(t, lab, fam.client, fam.server)
				if n := c.send(500*time.Millisecond, registers(8)...); n != 8 {
					t.Errorf("whitelisted source's 8 REGISTERs: %d echoed, want 8", n)
				}
				for _, m := range []string{"INVITE", "OPTIONS", "REGISTER"} {
					if !c.passes(m) {
						t.Errorf("whitelisted source's %s dropped", m)
					}
				}
				// Granted: the same flow now carries anything.
				in(t, lab, func() error {
					return b.AddMember(context.Background(), firewall.CodeSIPUDP, firewall.Member{Prefix: host(fam.s2)})
				})
				for _, m := range []string{"INVITE", "OPTIONS", "ACK"} {
					if !s2.passes(m) {
						t.Errorf("granted stranger's %s on its flow dropped", m)
					}
				}
			})
		}
		st.Add(firewall.CodeSIPUDP, host(stranger2V4), 0)
		st.Add(firewall.CodeSIPUDP, host(stranger2V6), 0)
		verifyClean(t, lab, b, st)

		// The refused datagrams are counted as drops.
		in(t, lab, func() error {
			ds, err := b.Drops(context.Background())
			if err != nil {
				return err
			}
			for _, a := range []netip.Addr{fwtest.OtherV4, fwtest.OtherV6} {
				var got uint64
				for _, d := range ds {
					if d.Addr == a && d.Proto == "udp" && d.Port == 5060 {
						got = d.Packets
					}
				}
				if got < 5 {
					t.Errorf("drops of %s on udp/5060: %d, want at least 5", a, got)
				}
			}
			return nil
		})

		// Off: a stranger's REGISTER is dropped, as before.
		off := responsiveState(false)
		in(t, lab, func() error { return b.Apply(context.Background(), off) })
		verifyClean(t, lab, b, off)
		lab.Check(t, probeTimeout,
			fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Payload: sipMessage("REGISTER", "pbx.example.org")},
			fwtest.Probe{Proto: "udp", Src: fwtest.OtherV6, Dst: fwtest.ServerV6, Port: 5060, Payload: sipMessage("REGISTER", "pbx.example.org")},
			fwtest.Probe{Proto: "udp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 5060, Payload: sipMessage("INVITE", "pbx.example.org"), Want: true},
		)
	})
}

func TestResponsiveValidate(t *testing.T) {
	for _, c := range []struct {
		r  firewall.ResponsiveConfig
		ok bool
	}{
		{firewall.ResponsiveConfig{}, true},
		{firewall.ResponsiveConfig{Enabled: true}, true},
		{firewall.ResponsiveConfig{Enabled: true, PerMinute: 600, Burst: 100}, true},
		{firewall.ResponsiveConfig{Enabled: true, PerMinute: 601, Burst: 3}, false},
		{firewall.ResponsiveConfig{Enabled: true, PerMinute: -1}, false},
		{firewall.ResponsiveConfig{Enabled: true, PerMinute: 6, Burst: 101}, false},
		{firewall.ResponsiveConfig{Burst: -3}, false},
	} {
		cfg := firewall.DefaultConfig()
		cfg.Responsive = c.r
		if err := cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", c.r, err, c.ok)
		}
	}
}
