package firewall_test

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// The tests below tamper with the kernel by hand, the way an
// administrator, fail2ban or the FreePBX Firewall module would, and check
// that Verify names what happened, that packets show the damage was real,
// and that Apply repairs it (or, for what is harmless, that nothing is
// reported and nothing moves).

// tamperCase is one hand edit, per backend.
type tamperCase struct {
	name string
	// do edits the lab's server namespace with the backend's own tools;
	// a backend without an entry skips the case.
	do map[string]func(lab *fwtest.Lab) error
	// kind is what Verify must report; "" for nothing.
	kind firewall.DriftKind
	// exposed: while tampered, the stranger's SYN to 22 passes and (for
	// the member cases) the whitelisted client's does not.
	strangerIn, clientOut bool
	// check runs on the Status after the repair (or, for a harmless
	// edit, after Verify found nothing).
	check func(t *testing.T, bk backend, lab *fwtest.Lab, s firewall.Status)
}

func sh2(lab *fwtest.Lab, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := lab.Exec(lab.Server, c...); err != nil {
			return err
		}
	}
	return nil
}

func nftScript(lab *fwtest.Lab, script string) error {
	_, err := lab.Exec(lab.Server, "sh", "-c", "printf '%s' \"$0\" | nft -f -", script)
	return err
}

// lastRuleHandle returns the handle of the last rule of dialgate's
// chain, from `nft -a`.
func lastRuleHandle(lab *fwtest.Lab) (string, error) {
	out, err := lab.Exec(lab.Server, "nft", "-a", "list", "chain", "inet", firewall.NFTTable, firewall.NFTChain)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`# handle (\d+)`).FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return "", fmt.Errorf("no rule handles in:\n%s", out)
	}
	return m[len(m)-1][1], nil
}

const f2bScript = `table inet f2b-table {
	chain f2b-chain {
		type filter hook input priority -100; policy accept;
		tcp dport 22 ip saddr 192.0.2.7 reject
		tcp dport 22 accept
	}
}
`

const fpbxScript = `table inet fpbx {
	chain input {
		type filter hook input priority filter; policy accept;
		jump fpbxfirewall
	}
	chain fpbxfirewall {
		iifname "lo" accept
		tcp dport 22 accept
	}
}
`

var tamperCases = []tamperCase{
	{
		name: "flush chain", kind: firewall.DriftChain, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error { return sh2(l, []string{"iptables", "-F", firewall.Chain}) },
			"nftables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"nft", "flush", "chain", "inet", firewall.NFTTable, firewall.NFTChain})
			},
		},
	},
	{
		name: "accept ahead", kind: firewall.DriftJump, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"})
			},
		},
		check: func(t *testing.T, bk backend, lab *fwtest.Lab, s firewall.Status) {
			// The jump went back in front; the host's rule stays, behind.
			out, _ := lab.Exec(lab.Server, "iptables", "-S", "INPUT")
			if !strings.Contains(out, "-A INPUT -j DIALGATE\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT") {
				t.Errorf("jump not moved in front of the foreign ACCEPT:\n%s", out)
			}
		},
	},
	{
		name: "accept ahead via chain", kind: firewall.DriftJump, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"iptables", "-N", "helper"},
					[]string{"iptables", "-A", "helper", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"},
					[]string{"iptables", "-I", "INPUT", "1", "-j", "helper"})
			},
		},
	},
	{
		name: "accept in chain", kind: firewall.DriftChain, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"nftables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"nft", "insert", "rule", "inet", firewall.NFTTable, firewall.NFTChain, "tcp", "dport", "22", "accept"})
			},
		},
	},
	{
		// The same number of rules and the same first rule: only the
		// printed rules give it away.
		name: "drop replaced in place", kind: firewall.DriftChain, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				out, err := l.Exec(l.Server, "iptables", "-S", firewall.Chain)
				if err != nil {
					return err
				}
				n := strings.Count(out, "-A "+firewall.Chain+" ")
				return sh2(l, []string{"iptables", "-R", firewall.Chain, fmt.Sprint(n), "-j", "ACCEPT"})
			},
			"nftables": func(l *fwtest.Lab) error {
				h, err := lastRuleHandle(l)
				if err != nil {
					return err
				}
				return sh2(l, []string{"nft", "replace", "rule", "inet", firewall.NFTTable, firewall.NFTChain, "handle", h, "accept"})
			},
		},
	},
	{
		name: "flush set", kind: firewall.DriftMembers, clientOut: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"ipset", "flush", firewall.SetName(firewall.CodeSSH, firewall.V4)})
			},
			"nftables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"nft", "flush", "set", "inet", firewall.NFTTable, "c8v4h"})
			},
		},
	},
	{
		name: "foreign member", kind: firewall.DriftMembers, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"ipset", "add", firewall.SetName(firewall.CodeSSH, firewall.V4), fwtest.OtherV4.String()})
			},
			"nftables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"nft", "add", "element", "inet", firewall.NFTTable, "c8v4h", "{", fwtest.OtherV4.String(), "}"})
			},
		},
	},
	{
		name: "leftover", kind: firewall.DriftLeftover,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"ipset", "create", firewall.SetName(firewall.CodeSSH, firewall.V4) + "-t", "hash:net", "timeout", "0"})
			},
			"nftables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"nft", "add", "table", "inet", firewall.NFTTable + "-probe"})
			},
		},
		check: func(t *testing.T, bk backend, lab *fwtest.Lab, s firewall.Status) {
			out, _ := lab.Exec(lab.Server, "ipset", "list", "-n")
			nft, _ := lab.Exec(lab.Server, "nft", "list", "tables")
			if strings.Contains(out, "-t\n") || strings.Contains(nft, "probe") {
				t.Errorf("leftover still there:\n%s\n%s", out, nft)
			}
		},
	},
	{
		// fail2ban inserts its jump at INPUT 1; its chain rejects banned
		// addresses and returns. In nftables, a chain of another table
		// ahead of dialgate's, even one that accepts, cannot let a packet
		// past it.
		name: "fail2ban ahead",
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"iptables", "-N", "f2b-sshd"},
					[]string{"iptables", "-A", "f2b-sshd", "-s", "192.0.2.7/32", "-j", "REJECT", "--reject-with", "icmp-port-unreachable"},
					[]string{"iptables", "-A", "f2b-sshd", "-j", "RETURN"},
					[]string{"iptables", "-I", "INPUT", "1", "-p", "tcp", "-m", "multiport", "--dports", "22", "-j", "f2b-sshd"})
			},
			"nftables": func(l *fwtest.Lab) error { return nftScript(l, f2bScript) },
		},
		check: func(t *testing.T, bk backend, lab *fwtest.Lab, s firewall.Status) {
			if !s.Loaded() {
				t.Errorf("not protected with only a harmless chain ahead: %+v", s.Families)
			}
			ahead := s.Families[0].Ahead
			if len(ahead) != 1 || !ahead[0].Harmless || !strings.Contains(ahead[0].Rule, "f2b-") {
				t.Errorf("ahead: %+v, want the fail2ban rule, harmless", ahead)
			}
			if bk.name == "iptables" {
				if s.Families[0].JumpPosition != 2 {
					t.Errorf("jump moved: position %d, want 2, behind fail2ban's", s.Families[0].JumpPosition)
				}
				if !slices.ContainsFunc(s.Coexistence, func(n string) bool { return strings.Contains(n, "fail2ban") }) {
					t.Errorf("no fail2ban note: %q", s.Coexistence)
				}
			}
		},
	},
	{
		// The FreePBX Firewall module with iptables: its chain accepts
		// ahead of dialgate (drift, repaired), and a note says what to do.
		name: "freepbx", kind: firewall.DriftJump, strangerIn: true,
		do: map[string]func(*fwtest.Lab) error{
			"iptables": func(l *fwtest.Lab) error {
				return sh2(l, []string{"iptables", "-N", "fpbxfirewall"}, []string{"iptables", "-N", "fpbxreject"},
					[]string{"iptables", "-A", "fpbxfirewall", "-i", "lo", "-j", "ACCEPT"},
					[]string{"iptables", "-A", "fpbxfirewall", "-m", "state", "--state", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
					[]string{"iptables", "-A", "fpbxfirewall", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"},
					[]string{"iptables", "-A", "fpbxfirewall", "-j", "fpbxreject"},
					[]string{"iptables", "-I", "INPUT", "1", "-j", "fpbxfirewall"})
			},
		},
		check: checkFreePBX,
	},
	{
		// The FreePBX Firewall module with nftables (FreePBX 18): its
		// table filters after dialgate's, so nothing is drift, a
		// stranger stays out, and a note says what to do.
		name: "freepbx nftables",
		do: map[string]func(*fwtest.Lab) error{
			"nftables": func(l *fwtest.Lab) error { return nftScript(l, fpbxScript) },
		},
		check: checkFreePBX,
	},
}

func checkFreePBX(t *testing.T, bk backend, lab *fwtest.Lab, s firewall.Status) {
	if !s.Loaded() {
		t.Errorf("not protected: %+v", s.Families)
	}
	if !slices.ContainsFunc(s.Coexistence, func(n string) bool {
		return strings.Contains(n, "FreePBX Firewall") && strings.Contains(n, "fwconsole firewall disable")
	}) {
		t.Errorf("no FreePBX note: %q", s.Coexistence)
	}
	t.Logf("coexistence: %q", s.Coexistence)
}

// TestVerifyTampering runs every tamper case on both backends, each in a
// lab of its own.
func TestVerifyTampering(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		for _, tc := range tamperCases {
			do := tc.do[bk.name]
			if do == nil {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				if bk.name == "nftables" && !requireNFT(t) {
					t.Skip("nft missing")
				}
				lab := fwtest.NewLab(t)
				b := bk.new(t, lab)
				lab.Echo(t, "tcp", 22)
				ctx := context.Background()
				cfg := firewall.DefaultConfig()
				cfg.LAN = nil
				st := firewall.State{Config: cfg}
				st.Add(firewall.CodeSSH, host(fwtest.ClientV4), 0)
				st.Add(firewall.CodeSSH, host(fwtest.ClientV6), time.Hour)
				st.Add(firewall.CodeSIPUDP, netip.MustParsePrefix("198.51.100.0/24"), 0)
				verify := func() firewall.Drift {
					t.Helper()
					var d firewall.Drift
					in(t, lab, func() (err error) { d, err = b.Verify(ctx, st); return err })
					return d
				}
				in(t, lab, func() error { return b.Apply(ctx, st) })
				if d := verify(); !d.OK() {
					t.Fatalf("drift right after Apply: %s", d)
				}
				if err := do(lab); err != nil {
					t.Fatal(err)
				}
				d := verify()
				if tc.kind == "" {
					if !d.OK() {
						t.Errorf("harmless edit reported as drift: %s", d)
					}
				} else if !slices.Contains(d.Kinds(), tc.kind) {
					t.Errorf("Verify after %q: %q (kinds %v), want kind %s", tc.name, d, d.Kinds(), tc.kind)
				} else {
					t.Logf("found: %s", d)
				}
				stranger := fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22}
				client := fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: true}
				if tc.strangerIn || tc.clientOut {
					// The damage was real: packets show it.
					s, c := stranger, client
					s.Want, c.Want = tc.strangerIn, !tc.clientOut
					lab.Check(t, probeTimeout, s, c)
				}
				in(t, lab, func() error { return b.Apply(ctx, st) })
				if d := verify(); !d.OK() {
					t.Errorf("drift after the repair: %s", d)
				}
				lab.Check(t, probeTimeout, stranger, client)
				if tc.check != nil {
					tc.check(t, bk, lab, statusOf(t, lab, b))
				}
			})
		}
	})
}

// TestVerifyNoFalseDrift applies states with everything that could look
// like drift when it is not: secret SIP domains, LAN ranges, overlapping
// networks with timeouts (flattened by nftables), timed members, the
// reject rule; Verify must stay quiet after Apply and Rebuild, a few
// seconds later, and from a second backend instance that did not write
// the chain.
func TestVerifyNoFalseDrift(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		ctx := context.Background()
		cfg := firewall.DefaultConfig()
		cfg.Reject = true
		cfg.SIPDomains = []string{"xq356jq.example.org"}
		st := firewall.State{Config: cfg}
		st.Add(firewall.CodeSSH, netip.MustParsePrefix("198.51.100.0/24"), time.Hour)
		st.Add(firewall.CodeSSH, netip.MustParsePrefix("198.51.100.0/28"), 0)
		st.Add(firewall.CodeSSH, netip.MustParsePrefix("198.51.100.7/32"), 2*time.Hour)
		st.Add(firewall.CodeAll, host(fwtest.ClientV6), 90*time.Second)
		st.Add(firewall.CodeSIPUDP, netip.MustParsePrefix("2001:db8:1::/48"), 0)
		for i := 0; i < 100; i++ {
			st.Add(firewall.CodeSIPUDP, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), 32), time.Duration(i+1)*time.Minute)
		}
		quiet := func(when string, b firewall.Backend) {
			t.Helper()
			var d firewall.Drift
			in(t, lab, func() (err error) { d, err = b.Verify(ctx, st); return err })
			if !d.OK() {
				t.Errorf("%s: drift reported: %s", when, d)
			}
		}
		in(t, lab, func() error { return b.Apply(ctx, st) })
		quiet("after Apply", b)
		in(t, lab, func() error { return b.Apply(ctx, st) })
		quiet("after a second Apply", b)
		in(t, lab, func() error { return b.Rebuild(ctx, st) })
		quiet("after Rebuild", b)
		time.Sleep(2 * time.Second)
		quiet("2 s later", b)
		other := bk.new(t, lab)
		quiet("from a second backend", other)
		in(t, lab, func() error { return other.Apply(ctx, st) })
		quiet("after the second backend's Apply", other)
		quiet("the first backend, after the second one's Apply", b)
		// An empty state wants empty sets: members then are drift.
		empty := firewall.State{Config: cfg}
		var d firewall.Drift
		in(t, lab, func() (err error) { d, err = b.Verify(ctx, empty); return err })
		if !slices.Contains(d.Kinds(), firewall.DriftMembers) {
			t.Errorf("members not reported against an empty state: %s", d)
		}
	})
}
