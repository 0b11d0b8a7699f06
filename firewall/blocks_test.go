package firewall_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

func blocker(t *testing.T, b firewall.Backend) firewall.Blocker {
	t.Helper()
	bl, ok := b.(firewall.Blocker)
	if !ok {
		t.Fatalf("%T is not a firewall.Blocker", b)
	}
	return bl
}

func blockedOf(t *testing.T, lab *fwtest.Lab, bl firewall.Blocker) map[netip.Addr]time.Duration {
	t.Helper()
	var bs []firewall.Blocked
	in(t, lab, func() (err error) { bs, err = bl.Blocked(context.Background()); return err })
	out := map[netip.Addr]time.Duration{}
	for i, x := range bs {
		if i > 0 && bs[i-1].Addr.Compare(x.Addr) >= 0 {
			t.Errorf("Blocked not sorted by address: %v", bs)
		}
		out[x.Addr] = x.Left
	}
	return out
}

// udpFlow is a UDP socket in the client namespace, bound to src and
// connected to dst:port: the same 5-tuple every time, so after the first
// echo conntrack sees it ESTABLISHED.
type udpFlow struct{ c net.Conn }

func openFlow(t *testing.T, lab *fwtest.Lab, src, dst netip.Addr, port uint16) *udpFlow {
	t.Helper()
	var c net.Conn
	err := fwtest.Do(lab.Client, func() (err error) {
		d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err = d.Dial("udp", netip.AddrPortFrom(dst, port).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &udpFlow{c}
}

// echoes reports whether a datagram on the flow comes back (three tries).
func (f *udpFlow) echoes(t *testing.T) bool {
	t.Helper()
	buf := make([]byte, 64)
	for range 3 {
		if _, err := f.c.Write([]byte("flow")); err != nil {
			t.Fatal(err)
		}
		f.c.SetReadDeadline(time.Now().Add(probeTimeout / 3))
		for {
			n, err := f.c.Read(buf)
			if err != nil {
				break // timeout: try again
			}
			if string(buf[:n]) == "flow" {
				return true
			}
		}
	}
	return false
}

// TestBlock sends real packets: with Config.Block, a blocked source is
// dropped for every service although it is whitelisted for SSH and SIP
// (blocking wins in the kernel), its established UDP flow stops too,
// Unblock restores it, a timeout expires on its own, Blocked lists the
// sources with their time left, Apply and Rebuild keep the members,
// Verify never reports them, a missing block set is drift, and Remove
// leaves no block set; without Config.Block the members have no effect.
func TestBlock(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		if bk.name == "nftables" && !requireNFT(t) {
			return
		}
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		bl := blocker(t, b)
		ctx := context.Background()
		lab.Echo(t, "tcp", 22)
		lab.Echo(t, "udp", 5060)
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		cfg.Block = true
		st := firewall.State{Config: cfg}
		for _, a := range []netip.Addr{fwtest.ClientV4, fwtest.OtherV4, fwtest.ClientV6, fwtest.OtherV6} {
			st.Add(firewall.CodeSSH, host(a), 0)
			st.Add(firewall.CodeSIPUDP, host(a), 0)
		}

		// Before Apply there is no set to block in; unblocking is fine.
		in(t, lab, func() error {
			if err := bl.Block(ctx, fwtest.OtherV4, time.Minute); err == nil {
				t.Error("Block before Apply: no error")
			}
			return bl.Unblock(ctx, fwtest.OtherV4)
		})
		in(t, lab, func() error { return b.Apply(ctx, st) })

		type fam struct{ client, other, server netip.Addr }
		fams := []fam{{fwtest.ClientV4, fwtest.OtherV4, fwtest.ServerV4}, {fwtest.ClientV6, fwtest.OtherV6, fwtest.ServerV6}}
		probes := func(otherPasses bool) []fwtest.Probe {
			var ps []fwtest.Probe
			for _, f := range fams {
				ps = append(ps,
					fwtest.Probe{Proto: "tcp", Src: f.other, Dst: f.server, Port: 22, Want: otherPasses},
					fwtest.Probe{Proto: "udp", Src: f.other, Dst: f.server, Port: 5060, Want: otherPasses},
					fwtest.Probe{Proto: "tcp", Src: f.client, Dst: f.server, Port: 22, Want: true},
					fwtest.Probe{Proto: "udp", Src: f.client, Dst: f.server, Port: 5060, Want: true})
			}
			return ps
		}
		lab.Check(t, probeTimeout, probes(true)...)

		// Established UDP flows from the soon-blocked sources.
		var flows []*udpFlow
		for _, f := range fams {
			fl := openFlow(t, lab, f.other, f.server, 5060)
			if !fl.echoes(t) {
				t.Fatalf("flow %s -> %s:5060 does not pass before the block", f.other, f.server)
			}
			flows = append(flows, fl)
		}

		in(t, lab, func() error {
			for _, f := range fams {
				if err := bl.Block(ctx, f.other, time.Hour); err != nil {
					return err
				}
			}
			return nil
		})
		lab.Check(t, probeTimeout, probes(false)...)
		for i, fl := range flows {
			if fl.echoes(t) {
				t.Errorf("established flow from %s still passes after the block", fams[i].other)
			}
		}
		got := blockedOf(t, lab, bl)
		for _, f := range fams {
			if left, ok := got[f.other]; !ok || left < time.Hour-5*time.Second || left > time.Hour {
				t.Errorf("Blocked: %s has %v left (listed %v), want about 1h", f.other, left, ok)
			}
		}
		if len(got) != 2 {
			t.Errorf("Blocked: %v, want the two others", got)
		}
		// Block again replaces the timeout, shorter or longer.
		in(t, lab, func() error { return bl.Block(ctx, fwtest.OtherV4, 10*time.Minute) })
		if left := blockedOf(t, lab, bl)[fwtest.OtherV4]; left < 10*time.Minute-5*time.Second || left > 10*time.Minute {
			t.Errorf("re-Block: %v left, want about 10m", left)
		}

		// Members are not state: Verify is clean; Apply and Rebuild keep
		// them and the drops.
		var d firewall.Drift
		in(t, lab, func() (err error) { d, err = b.Verify(ctx, st); return err })
		if !d.OK() {
			t.Errorf("Verify with blocks: %s", d)
		}
		in(t, lab, func() error { return b.Apply(ctx, st) })
		in(t, lab, func() error { return b.Rebuild(ctx, st) })
		if got := blockedOf(t, lab, bl); len(got) != 2 {
			t.Errorf("after Apply and Rebuild: blocked %v, want the two others", got)
		}
		lab.Check(t, probeTimeout, probes(false)...)

		// Unblock restores, the flow included; unblocking again is fine.
		in(t, lab, func() error {
			for _, f := range fams {
				for range 2 {
					if err := bl.Unblock(ctx, f.other); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if got := blockedOf(t, lab, bl); len(got) != 0 {
			t.Errorf("after Unblock: blocked %v", got)
		}
		lab.Check(t, probeTimeout, probes(true)...)
		for i, fl := range flows {
			if !fl.echoes(t) {
				t.Errorf("flow from %s does not pass after Unblock", fams[i].other)
			}
		}

		// A block expires on its own; a non-positive one is an unblock.
		in(t, lab, func() error {
			for _, f := range fams {
				if err := bl.Block(ctx, f.other, 2*time.Second); err != nil {
					return err
				}
			}
			if err := bl.Block(ctx, fwtest.ClientV4, time.Minute); err != nil {
				return err
			}
			return bl.Block(ctx, fwtest.ClientV4, 0)
		})
		if got := blockedOf(t, lab, bl); len(got) != 2 || got[fwtest.OtherV4] > 2*time.Second || got[fwtest.OtherV6] <= 0 {
			t.Errorf("2 s blocks: %v", got)
		}
		lab.Check(t, probeTimeout, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
			fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV6, Dst: fwtest.ServerV6, Port: 22, Want: false})
		time.Sleep(3 * time.Second)
		if got := blockedOf(t, lab, bl); len(got) != 0 {
			t.Errorf("after expiry: blocked %v", got)
		}
		lab.Check(t, probeTimeout, probes(true)...)

		// Without Config.Block the members have no effect.
		off := st
		off.Config.Block = false
		in(t, lab, func() error {
			for _, f := range fams {
				if err := bl.Block(ctx, f.other, time.Hour); err != nil {
					return err
				}
			}
			return b.Apply(ctx, off)
		})
		lab.Check(t, probeTimeout, probes(true)...)
		in(t, lab, func() (err error) { d, err = b.Verify(ctx, off); return err })
		if !d.OK() {
			t.Errorf("Verify without Config.Block: %s", d)
		}
		// And back on: the members kept through the chain change bite.
		in(t, lab, func() error { return b.Apply(ctx, st) })
		lab.Check(t, probeTimeout, probes(false)...)

		// The sets are bounded and take per-member timeouts.
		var cmds [][]string
		if bk.name == "iptables" {
			for _, f := range []firewall.Family{firewall.V4, firewall.V6} {
				cmds = append(cmds, []string{"ipset", "list", "-t", firewall.BlockSetName(f)})
			}
		} else {
			cmds = [][]string{{"nft", "list", "set", "inet", "dialgate", "block-v4"}, {"nft", "list", "set", "inet", "dialgate", "block-v6"}}
		}
		for _, cmd := range cmds {
			out, err := lab.Exec(lab.Server, cmd...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range map[string][]string{"iptables": {"hash:ip", "maxelem 65536", "timeout 0"}, "nftables": {"size 65536", "flags timeout"}}[bk.name] {
				if !strings.Contains(out, want) {
					t.Errorf("%s: no %q in\n%s", strings.Join(cmd, " "), want, out)
				}
			}
		}

		// A missing block set is drift.
		var del []string
		if bk.name == "iptables" {
			// The rule refers to the set: take it out of the chain first
			// (the chain drifts too), then destroy the set.
			del = []string{"sh", "-c", "iptables -F " + firewall.Chain + " && ipset destroy " + firewall.BlockSetName(firewall.V4)}
		} else {
			del = []string{"sh", "-c", "nft flush chain inet dialgate input && nft delete set inet dialgate block-v4"}
		}
		if out, err := lab.Exec(lab.Server, del...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		in(t, lab, func() (err error) { d, err = b.Verify(ctx, st); return err })
		if !strings.Contains(d.String(), "block set") || !strings.Contains(d.String(), "missing") {
			t.Errorf("Verify without the v4 block set: %s", d)
		}
		in(t, lab, func() error { return b.Apply(ctx, st) })
		in(t, lab, func() (err error) { d, err = b.Verify(ctx, st); return err })
		if !d.OK() {
			t.Errorf("Verify after the repair: %s", d)
		}
		if got := blockedOf(t, lab, bl); len(got) != 1 {
			// The v6 set survived the repair (iptables) or was carried
			// over by the table's replacement (nftables).
			t.Errorf("after the repair: blocked %v, want the v6 other", got)
		}

		in(t, lab, func() error { return b.Remove(ctx) })
		out, err := lab.Exec(lab.Server, "ipset", "list", "-n")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "block") {
			t.Errorf("block sets after Remove:\n%s", out)
		}
		if got := blockedOf(t, lab, bl); len(got) != 0 {
			t.Errorf("blocked after Remove: %v", got)
		}
		in(t, lab, func() error { return bl.Unblock(ctx, fwtest.OtherV4) })
	})
}
