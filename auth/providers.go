package auth

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dialgate/dialgate/store"
)

// Provider is a SIP trunk provider dialgate can trust: the names and
// networks its servers signal from, and the services (permission codes 1,
// 2, 3) they need.
type Provider struct {
	Name     string   `json:"name"`
	Title    string   `json:"title"`
	FQDNs    []string `json:"fqdns,omitempty"`
	CIDRs    []string `json:"cidrs,omitempty"`
	Services []int    `json:"services"`
	Source   string   `json:"source,omitempty"` // where the data comes from, for the admin to check
	Custom   bool     `json:"custom,omitempty"` // added by the administrator
}

// The built-in catalogue. Names are preferred over addresses: a provider
// moves its servers more often than it renames them, and the refresher
// follows names. Each entry names its source; providers change their
// networks, so administrators should check before they rely on one.
//
//go:embed providers.json
var catalogueJSON []byte

// Catalogue returns the built-in providers, validated.
func Catalogue() ([]Provider, error) {
	var ps []Provider
	if err := json.Unmarshal(catalogueJSON, &ps); err != nil {
		return nil, fmt.Errorf("provider catalogue: %w", err)
	}
	for i := range ps {
		if err := ps[i].Validate(); err != nil {
			return nil, fmt.Errorf("provider catalogue: %w", err)
		}
	}
	return ps, nil
}

// Validate checks a provider as any whitelist input, and canonicalises
// its names and networks in place.
func (p *Provider) Validate() error {
	if err := ValidateAccountName(p.Name); err != nil {
		return fmt.Errorf("provider %q: %w", p.Name, err)
	}
	if err := ValidateComment(p.Title); err != nil {
		return fmt.Errorf("provider %q: title: %w", p.Name, err)
	}
	if len(p.FQDNs) == 0 && len(p.CIDRs) == 0 {
		return invalid("provider %q: needs at least one FQDN or network", p.Name)
	}
	for i, f := range p.FQDNs {
		v, err := ParseEntry(store.KindFQDN, f, false)
		if err != nil {
			return fmt.Errorf("provider %q: %w", p.Name, err)
		}
		p.FQDNs[i] = v
	}
	for i, c := range p.CIDRs {
		kind := store.KindCIDR
		if !strings.Contains(c, "/") {
			kind = store.KindIP
		}
		v, err := ParseEntry(kind, c, false)
		if err != nil {
			return fmt.Errorf("provider %q: %w", p.Name, err)
		}
		p.CIDRs[i] = v
	}
	if len(p.Services) == 0 {
		return invalid("provider %q: no services; give codes 1 (SIP UDP), 2 (SIP TCP), 3 (IAX)", p.Name)
	}
	for _, s := range p.Services {
		if s < 1 || s > 3 {
			return invalid("provider %q: service %d: providers get 1 (SIP UDP), 2 (SIP TCP) or 3 (IAX) only", p.Name, s)
		}
	}
	slices.Sort(p.Services)
	p.Services = slices.Compact(p.Services)
	return nil
}

// Perms returns the provider's services as a permission set.
func (p Provider) Perms() store.PermSet { return store.NewPermSet(p.Services...) }
