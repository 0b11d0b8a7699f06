package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// explain answers for entries, grants, disabled accounts and strangers,
// and its answer is what real packets do, on both backends; when someone
// takes the address out of the kernel behind dialgate's back, explain
// says the kernel disagrees.
func TestExplain(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			e := doorSetup(t, "[firewall]\nbackend = \""+backend+"\"\nlan = []\n")
			e.lab.Echo(t, "udp", 5060)
			client, other := fwtest.ClientV4.String(), fwtest.OtherV4.String()
			e.ok("account", "add", "bob", "--perms", "1")
			out := e.ok("allow", "cidr", "bob", "203.0.113.0/24", "--comment", "office")
			id := strings.SplitN(out, ":", 2)[0]

			// The stranger: only bob's network admits SIP; SSH is dropped.
			ex := explainJSON(t, e, other)
			if v := verdict(ex, "sip-udp"); !v.Admitted || !strings.Contains(strings.Join(v.By, ";"), "entry "+id+" of bob: 203.0.113.0/24") {
				t.Errorf("sip-udp for %s: %+v", other, v)
			}
			if v := verdict(ex, "ssh"); v.Admitted || v.By[0] != "nothing admits it: the final DROP" {
				t.Errorf("ssh for %s: %+v", other, v)
			}
			if !ex.KernelChecked || !ex.KernelAgrees || !ex.Protected {
				t.Errorf("kernel: %+v", ex)
			}
			e.lab.Check(t, probe,
				fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: true},
				fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false},
			)

			// A grant from the phone door: named with its time left.
			out, _ = e.call("48151623", "555", client, "--account", aliceNumber)
			wantOutcome(t, "right passcode", out, "granted", "granted")
			ex = explainJSON(t, e, client, "tcp/22")
			if len(ex.Verdicts) != 1 || !ex.Verdicts[0].Admitted || !strings.Contains(ex.Verdicts[0].By[0], "grant g") || !strings.Contains(ex.Verdicts[0].By[0], "of alice") {
				t.Errorf("tcp/22 for %s after the call: %+v", client, ex.Verdicts)
			}
			e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV4, Dst: fwtest.ServerV4, Port: 22, Want: true})

			// Text: the verdict, what contains it, the kernel.
			txt := e.ok("explain", other, "udp/5060")
			for _, want := range []string{"sip-udp", "admitted", "entry " + id + " of bob: 203.0.113.0/24, perms 1", "kernel: agrees"} {
				if !strings.Contains(txt, want) {
					t.Errorf("explain text lacks %q:\n%s", want, txt)
				}
			}
			// The stranger's SYNs to 22 above were dropped: explain shows them.
			ex = explainJSON(t, e, other)
			if i := slices.IndexFunc(ex.Drops, func(d firewall.Drop) bool { return d.Service == "ssh" }); i < 0 || ex.Drops[i].Packets < 1 {
				t.Errorf("drops of %s: %+v", other, ex.Drops)
			}
			if txt := e.ok("explain", other); !strings.Contains(txt, "recent drops (the final DROP, last hour):\n  ssh: ") {
				t.Errorf("explain text lacks the drops:\n%s", txt)
			}
			// A port no service uses.
			if ex := explainJSON(t, e, other, "tcp/8088"); ex.Verdicts[0].Admitted || ex.Verdicts[0].Service != "no service" {
				t.Errorf("tcp/8088: %+v", ex.Verdicts)
			}

			// A disabled account admits nothing, and explain says why.
			e.ok("account", "set", "bob", "--disable")
			ex = explainJSON(t, e, other)
			if v := verdict(ex, "sip-udp"); v.Admitted {
				t.Errorf("disabled account still admits: %+v", v)
			}
			if len(ex.Matches) != 1 || ex.Matches[0].Active || !strings.Contains(ex.Matches[0].Why, "disabled") {
				t.Errorf("matches with bob disabled: %+v", ex.Matches)
			}
			e.lab.Check(t, probe, fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: false})

			// Bad input is a usage or input error naming it.
			e.fails(exitUsage, `"22": want tcp/PORT`, "explain", client, "22")
			e.fails(exitError, `"203.0.113.300" is not an IP address`, "explain", "203.0.113.300")
		})
	}
}

func explainJSON(t *testing.T, e *e2e, args ...string) localapi.Explanation {
	t.Helper()
	var ex localapi.Explanation
	out := e.ok(append(append([]string{"explain"}, args...), "--json")...)
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatalf("explain --json: %v\n%s", err, out)
	}
	return ex
}

func verdict(ex localapi.Explanation, service string) localapi.Verdict {
	for _, v := range ex.Verdicts {
		if v.Service == service {
			return v
		}
	}
	return localapi.Verdict{}
}
