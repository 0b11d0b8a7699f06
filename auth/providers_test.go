package auth

import (
	"errors"
	"testing"
)

func TestCatalogueIsValid(t *testing.T) {
	ps, err := Catalogue()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) < 5 {
		t.Fatalf("catalogue has %d providers", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name] {
			t.Errorf("provider %s listed twice", p.Name)
		}
		seen[p.Name] = true
		if p.Source == "" {
			t.Errorf("provider %s has no source to check it against", p.Name)
		}
	}
}

func TestProviderValidate(t *testing.T) {
	cases := []struct {
		name string
		p    Provider
		ok   bool
	}{
		{"good", Provider{Name: "acme", Title: "ACME", FQDNs: []string{"SIP.Acme.example."}, CIDRs: []string{"198.51.100.0/24", "203.0.113.5"}, Services: []int{2, 1, 1}}, true},
		{"no targets", Provider{Name: "acme", Services: []int{1}}, false},
		{"bad name", Provider{Name: "ACME co", FQDNs: []string{"a.example"}, Services: []int{1}}, false},
		{"ssh", Provider{Name: "acme", FQDNs: []string{"a.example"}, Services: []int{8}}, false},
		{"all", Provider{Name: "acme", FQDNs: []string{"a.example"}, Services: []int{0}}, false},
		{"wide", Provider{Name: "acme", CIDRs: []string{"0.0.0.0/0"}, Services: []int{1}}, false},
		{"bad fqdn", Provider{Name: "acme", FQDNs: []string{"a b.example"}, Services: []int{1}}, false},
		{"title control", Provider{Name: "acme", Title: "x\n", FQDNs: []string{"a.example"}, Services: []int{1}}, false},
	}
	for _, c := range cases {
		err := c.p.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.ok {
			if c.p.FQDNs[0] != "sip.acme.example" || len(c.p.Services) != 2 || c.p.Perms().String() != "1,2" {
				t.Errorf("%s: not canonicalised: %+v", c.name, c.p)
			}
		} else if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNeedsForce) {
			t.Errorf("%s: error %v matches neither ErrInvalid nor ErrNeedsForce", c.name, err)
		}
	}
}
