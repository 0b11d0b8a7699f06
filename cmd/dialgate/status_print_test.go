package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
)

// TestPrintStatusFirewall checks the text status explains what filters
// ahead of dialgate and what the neighbours do, not only booleans.
func TestPrintStatusFirewall(t *testing.T) {
	tests := []struct {
		name string
		fw   firewall.Status
		want []string
		not  []string
	}{{
		name: "fail2ban ahead is harmless",
		fw: firewall.Status{
			Families: []firewall.FamilyStatus{{
				Family: "v4", ChainLoaded: true, JumpFirst: true, Rules: 12, JumpPosition: 2,
				Ahead: []firewall.AheadRule{{Rule: "-A INPUT -p tcp -j f2b-sshd", Harmless: true, Why: "jumps to f2b-sshd, which can only drop, reject, return or log"}},
			}},
			Coexistence: []string{"fail2ban's chains (f2b-sshd) run ahead of dialgate's jump"},
		},
		want: []string{
			"  v4: chain loaded (12 rules), in force, jump at INPUT position 2\n",
			"    ahead: -A INPUT -p tcp -j f2b-sshd  [harmless: jumps to f2b-sshd",
			"note: fail2ban's chains (f2b-sshd)",
		},
		not: []string{"CAN ADMIT", "NOT in force"},
	}, {
		name: "foreign accept ahead",
		fw: firewall.Status{Families: []firewall.FamilyStatus{{
			Family: "v6", ChainLoaded: true, Rules: 1, JumpPosition: 2,
			Ahead: []firewall.AheadRule{{Rule: "-A INPUT -j ACCEPT", Why: "can accept before dialgate: ACCEPT"}},
		}}},
		want: []string{
			"  v6: chain loaded (1 rule), NOT in force, jump at INPUT position 2\n",
			"    ahead: -A INPUT -j ACCEPT  [CAN ADMIT: can accept before dialgate: ACCEPT]\n",
		},
	}, {
		name: "no chain",
		fw:   firewall.Status{Families: []firewall.FamilyStatus{{Family: "v4"}}},
		want: []string{"  v4: chain MISSING\n"},
		not:  []string{"position", "note:"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			printStatus(&b, localapi.StatusInfo{Firewall: tt.fw})
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("status lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("status has %q:\n%s", n, out)
				}
			}
		})
	}
}
