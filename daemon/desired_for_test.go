package daemon

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// desiredFor must agree with desiredState on every prefix it is asked
// about: a grant synced from the partial state must leave the kernel as
// a full rebuild would.
func TestDesiredForMatchesDesiredState(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "dialgate.db"), store.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	// A small address pool so values collide across accounts and kinds.
	pool := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "2001:db8::1", "2001:db8::2"}
	nets := []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8::/64"}
	err = db.Update(func(tx store.Tx) error {
		for i := 0; i < 12; i++ {
			name := fmt.Sprintf("a%d", i)
			a := store.Account{Name: name, Perms: store.NewPermSet(rng.IntN(10), rng.IntN(10)), Enabled: rng.IntN(4) != 0}
			if err := tx.PutAccount(a); err != nil {
				return err
			}
			for j := 0; j < 3; j++ {
				e := store.Entry{Account: name}
				switch rng.IntN(3) {
				case 0:
					e.Kind, e.Value = store.KindIP, pool[rng.IntN(len(pool))]
				case 1:
					e.Kind, e.Value = store.KindCIDR, nets[rng.IntN(len(nets))]
				default:
					e.Kind, e.Value = store.KindFQDN, fmt.Sprintf("h%d.example.org", rng.IntN(4))
				}
				if rng.IntN(2) == 0 {
					e.Perms = store.NewPermSet(rng.IntN(10))
				}
				if _, err := tx.AddEntry(e); err != nil && !isExists(err) {
					return err
				}
			}
			for j := 0; j < 2; j++ {
				life := time.Duration(rng.IntN(7200)-1800) * time.Second // some expired
				g := store.Grant{Account: name, IP: pool[rng.IntN(len(pool))], Perms: store.NewPermSet(rng.IntN(10)),
					Created: now.Add(-time.Hour), Expires: now.Add(life)}
				if _, err := tx.PutGrant(g); err != nil {
					return err
				}
			}
		}
		for i := 0; i < 4; i++ {
			r := store.FQDNRecord{Name: fmt.Sprintf("h%d.example.org", i), Addrs: []string{pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))]}, LastSuccess: now}
			if err := tx.PutFQDN(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := firewall.DefaultConfig()
	var all []netip.Prefix
	for _, s := range append(pool, nets...) {
		p, _ := parsePrefix(s)
		all = append(all, p)
	}
	err = db.View(func(tx store.Tx) error {
		full, err := desiredState(tx, cfg, now)
		if err != nil {
			return err
		}
		// The SSH guard's view: the state around one address admits it
		// exactly where the full state does, for every service port.
		seen := map[bool]int{}
		probes := []string{"203.0.113.1", "203.0.113.2", "203.0.113.9", "198.51.100.20", "2001:db8::1", "2001:db8::77", "192.0.2.1", "::ffff:203.0.113.3"}
		for _, s := range probes {
			a := netip.MustParseAddr(s)
			around, err := desiredFor(tx, cfg, now, containing(a))
			if err != nil {
				return err
			}
			for _, port := range []uint16{22, 80, 5060, 4445} {
				for _, proto := range []string{"tcp", "udp"} {
					w, g := full.Admits(a, proto, port), around.Admits(a, proto, port)
					if w != g {
						t.Errorf("%s %s/%d: around says %v, full state %v", a, proto, port, g, w)
					}
					seen[w]++
				}
			}
		}
		if seen[true] == 0 || seen[false] == 0 {
			t.Errorf("probes admitted/dropped %d/%d: the comparison proves nothing", seen[true], seen[false])
		}
		for trial := 0; trial < 50; trial++ {
			var ask []netip.Prefix
			for _, p := range all {
				if rng.IntN(2) == 0 {
					ask = append(ask, p)
				}
			}
			part, err := desiredFor(tx, cfg, now, ask)
			if err != nil {
				return err
			}
			for code := 0; code < firewall.NumCodes; code++ {
				for _, p := range ask {
					wt, wok := full.Sets[code][p]
					gt, gok := part.Sets[code][p]
					if wok != gok || wt != gt {
						t.Errorf("code %d %s: partial %v/%v, full %v/%v", code, p, gok, gt, wok, wt)
					}
				}
				for p := range part.Sets[code] {
					if !contains(ask, p) {
						t.Errorf("code %d: partial state holds %s, which was not asked for", code, p)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func contains(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func isExists(err error) bool { return err != nil && errors.Is(err, store.ErrExists) }
