package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
)

// TestPrintProviders: each provider's line shows its services as codes
// and names, like the perms of accounts and entries, and the source its
// addresses come from.
func TestPrintProviders(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    localapi.ProviderInfo
		want []string
	}{
		{"catalogue", localapi.ProviderInfo{Provider: auth.Provider{Name: "telnyx", Title: "Telnyx", FQDNs: []string{"sip.telnyx.com"},
			Services: []int{1, 2}, Source: "https://support.telnyx.com/ips"}, Enabled: true},
			[]string{"telnyx", "true", "1 sip-udp, 2 sip-tcp", "sip.telnyx.com", "Telnyx", "https://support.telnyx.com/ips"}},
		{"iax", localapi.ProviderInfo{Provider: auth.Provider{Name: "iaxco", CIDRs: []string{"192.0.2.0/28"}, Services: []int{3}, Source: "https://iax.example/ips"}},
			[]string{"iaxco", "false", "3 iax", "192.0.2.0/28", "https://iax.example/ips"}},
		{"custom", localapi.ProviderInfo{Provider: auth.Provider{Name: "acme", FQDNs: []string{"sip.acme.example"}, Services: []int{1}, Custom: true}},
			[]string{"acme", "1 sip-udp", "  (custom)  ", "yours (providers add)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printProviders(&b, []localapi.ProviderInfo{tc.p}); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], "SERVICES") || !strings.Contains(lines[0], "SOURCE") {
				t.Fatalf("want a header with SERVICES and SOURCE and one line:\n%s", b.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(lines[1], w) {
					t.Errorf("line %q lacks %q", lines[1], w)
				}
			}
			if strings.Contains(lines[1], "[") {
				t.Errorf("line %q prints a Go slice", lines[1])
			}
		})
	}
	// Every catalogue entry names its source, and the list shows it.
	cat, err := auth.Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	var ps []localapi.ProviderInfo
	for _, p := range cat {
		if p.Source == "" {
			t.Errorf("catalogue entry %s has no source", p.Name)
		}
		ps = append(ps, localapi.ProviderInfo{Provider: p})
	}
	var b bytes.Buffer
	if err := printProviders(&b, ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range cat {
		if !strings.Contains(b.String(), p.Source) {
			t.Errorf("providers list does not show %s's source %s", p.Name, p.Source)
		}
	}
}
