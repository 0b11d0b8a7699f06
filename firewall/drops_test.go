package firewall_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

type dropKey struct {
	addr  netip.Addr
	proto string
	port  uint16
}

func dropsOf(t *testing.T, lab *fwtest.Lab, b firewall.Backend) map[dropKey]firewall.Drop {
	t.Helper()
	var ds []firewall.Drop
	in(t, lab, func() (err error) { ds, err = b.Drops(context.Background()); return err })
	out := map[dropKey]firewall.Drop{}
	for _, d := range ds {
		k := dropKey{d.Addr, d.Proto, d.Port}
		if _, dup := out[k]; dup {
			t.Errorf("drop %v listed twice", k)
		}
		out[k] = d
	}
	return out
}

// TestDrops sends real packets: a stranger's TCP SYNs to 22 and UDP
// datagrams to 5060 (both families) are dropped and counted per source
// and service in the kernel, with their last-seen time; a whitelisted
// client's SSH never shows up; the sets are bounded; a no-op Apply and
// Verify leave the counts alone (members are never drift); Remove takes
// the sets away.
func TestDrops(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		if bk.name == "nftables" && !requireNFT(t) {
			return
		}
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		lab.Echo(t, "tcp", 22)
		lab.Echo(t, "udp", 5060)
		cfg := firewall.DefaultConfig()
		cfg.LAN = nil
		st := firewall.State{Config: cfg}
		st.Add(firewall.CodeSSH, host(fwtest.ClientV4), 0)
		st.Add(firewall.CodeSSH, host(fwtest.ClientV6), 0)
		in(t, lab, func() error { return b.Apply(context.Background(), st) })
		if ds := dropsOf(t, lab, b); len(ds) != 0 {
			t.Fatalf("drops before any traffic: %v", ds)
		}
		start := time.Now()
		var probes []fwtest.Probe
		for _, f := range []struct{ client, other, server netip.Addr }{
			{fwtest.ClientV4, fwtest.OtherV4, fwtest.ServerV4},
			{fwtest.ClientV6, fwtest.OtherV6, fwtest.ServerV6},
		} {
			for range 3 {
				// One SYN each: the probe gives up before the kernel
				// would send it again.
				probes = append(probes,
					fwtest.Probe{Proto: "tcp", Src: f.other, Dst: f.server, Port: 22, Want: false},
					fwtest.Probe{Proto: "tcp", Src: f.client, Dst: f.server, Port: 22, Want: true})
			}
			// Three datagrams: the probe tries three times.
			probes = append(probes, fwtest.Probe{Proto: "udp", Src: f.other, Dst: f.server, Port: 5060, Want: false})
		}
		lab.Check(t, probeTimeout, probes...)

		ds := dropsOf(t, lab, b)
		for _, k := range []dropKey{
			{fwtest.OtherV4, "tcp", 22}, {fwtest.OtherV4, "udp", 5060},
			{fwtest.OtherV6, "tcp", 22}, {fwtest.OtherV6, "udp", 5060},
		} {
			d, ok := ds[k]
			if !ok {
				t.Errorf("no drop recorded for %v; have %v", k, ds)
				continue
			}
			if d.Packets < 3 || d.Packets > 6 {
				t.Errorf("%v: %d packets, want 3 (a few more if the stack retried)", k, d.Packets)
			}
			if d.LastSeen.Before(start.Add(-2*time.Second)) || d.LastSeen.After(time.Now().Add(time.Second)) {
				t.Errorf("%v: last seen %v, want between %v and now", k, d.LastSeen, start)
			}
		}
		for k := range ds {
			if k.addr == fwtest.ClientV4 || k.addr == fwtest.ClientV6 {
				t.Errorf("whitelisted client's packets were counted as dropped: %v", k)
			}
		}

		// Bounded in size and age.
		var cmds [][]string
		if bk.name == "iptables" {
			for _, f := range []firewall.Family{firewall.V4, firewall.V6} {
				cmds = append(cmds, []string{"ipset", "list", "-t", firewall.DropsSetName(f)}, []string{"ipset", "list", "-t", firewall.SeenSetName(f)})
			}
		} else {
			cmds = [][]string{{"nft", "list", "set", "inet", "dialgate", "drops-v4"}, {"nft", "list", "set", "inet", "dialgate", "drops-v6"}}
		}
		for _, cmd := range cmds {
			out, err := lab.Exec(lab.Server, cmd...)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range map[string][]string{"iptables": {"maxelem 65536", "timeout 3600"}, "nftables": {"size 65536", "timeout 1h", "counter"}}[bk.name] {
				if !strings.Contains(out, want) {
					t.Errorf("%s: no %q in\n%s", strings.Join(cmd, " "), want, out)
				}
			}
		}

		// Counts are not state: Verify is clean, Apply keeps them.
		var d firewall.Drift
		in(t, lab, func() (err error) { d, err = b.Verify(context.Background(), st); return err })
		if !d.OK() {
			t.Errorf("Verify after drops: %s", d)
		}
		in(t, lab, func() error { return b.Apply(context.Background(), st) })
		if again := dropsOf(t, lab, b); again[dropKey{fwtest.OtherV4, "tcp", 22}].Packets < ds[dropKey{fwtest.OtherV4, "tcp", 22}].Packets {
			t.Errorf("Apply reset the counts: %v, had %v", again, ds)
		}

		in(t, lab, func() error { return b.Remove(context.Background()) })
		if ds := dropsOf(t, lab, b); len(ds) != 0 {
			t.Errorf("drops after Remove: %v", ds)
		}
	})
}
