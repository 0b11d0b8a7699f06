package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// Explain tells why addr is admitted or dropped. It reads the database
// (entries, FQDN records and grants around the address, through the
// indexes) and the kernel's sets, never changes anything.
func (d *Daemon) Explain(ctx context.Context, req localapi.ExplainRequest) (localapi.Explanation, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(req.Addr))
	if err != nil {
		return localapi.Explanation{}, fmt.Errorf("%w: %q is not an IP address", auth.ErrInvalid, req.Addr)
	}
	a = a.Unmap().WithZone("")
	if req.Port != 0 && req.Proto != "tcp" && req.Proto != "udp" {
		return localapi.Explanation{}, fmt.Errorf("%w: protocol %q: want tcp or udp", auth.ErrInvalid, req.Proto)
	}
	cfg := d.config().FirewallRules()
	now := d.now()
	ex := localapi.Explanation{Addr: a.String(), Verdicts: []localapi.Verdict{}, Matches: []localapi.Match{}, Notes: []string{}, Disagreements: []string{}, Drops: []firewall.Drop{}}
	var want firewall.State
	err = d.db.View(func(tx store.Tx) error {
		domains, err := sipDomains(tx)
		if err != nil {
			return err
		}
		cfg.SIPDomains = domains
		if want, err = desiredFor(tx, cfg, now, containing(a)); err != nil {
			return err
		}
		ex.Matches, err = matchesFor(tx, a, now)
		return err
	})
	if err != nil {
		return ex, err
	}
	want.Config = cfg
	ex.Notes = explainNotes(a, cfg)
	for _, p := range cfg.LAN {
		if p.Contains(a) {
			ex.Matches = append([]localapi.Match{{Kind: "lan", Value: p.String(), Perms: "0", Active: true}}, ex.Matches...)
		}
	}
	ex.Verdicts = verdicts(a, want, ex.Matches, req)

	// The kernel: does each set hold the address where the database says?
	if st, err := d.fw.Status(ctx); err == nil {
		ex.KernelChecked = true
		ex.Protected, _ = Protection(st)
		ex.Disagreements = kernelDisagreements(a, want, st)
		ex.KernelAgrees = len(ex.Disagreements) == 0
	} else {
		ex.Disagreements = append(ex.Disagreements, "the kernel could not be read: "+err.Error())
	}
	if ds, err := d.fw.Drops(ctx); err == nil {
		NameDrops(cfg, ds)
		for _, dr := range ds {
			if dr.Addr.Unmap() == a {
				ex.Drops = append(ex.Drops, dr)
			}
		}
		slices.SortFunc(ex.Drops, func(x, y firewall.Drop) int { return cmp.Compare(y.Packets, x.Packets) })
	}
	return ex, nil
}

// matchesFor lists every entry, FQDN address and grant that contains a.
func matchesFor(tx store.Tx, a netip.Addr, now time.Time) ([]localapi.Match, error) {
	var out []localapi.Match
	accounts := map[string]*store.Account{}
	account := func(name string) (*store.Account, error) {
		if acct, ok := accounts[name]; ok {
			return acct, nil
		}
		acct, err := tx.Account(name)
		if errors.Is(err, store.ErrNotFound) {
			accounts[name] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		accounts[name] = &acct
		return &acct, nil
	}
	addEntry := func(e store.Entry, via string) error {
		acct, err := account(e.Account)
		if err != nil {
			return err
		}
		m := localapi.Match{Kind: "entry", ID: e.ID, Account: e.Account, Value: e.Value, Via: via, Active: true}
		if e.Provider != "" {
			m.Kind, m.Why = "provider", "provider "+e.Provider
		}
		switch {
		case acct == nil:
			m.Active, m.Why = false, "its account is gone"
		case !acct.Enabled:
			m.Active, m.Why = false, "account "+acct.Name+" is disabled"
		default:
			m.Perms = effectivePerms(e, *acct).String()
		}
		out = append(out, m)
		return nil
	}
	values := map[string]bool{}
	for _, p := range containing(a) {
		values[p.String()] = true
	}
	values[a.String()] = true
	keys := make([]string, 0, len(values))
	for v := range values {
		keys = append(keys, v)
	}
	slices.Sort(keys)
	for _, v := range keys {
		es, err := tx.EntriesByValue(v)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Kind == store.KindFQDN {
				continue
			}
			if err := addEntry(e, ""); err != nil {
				return nil, err
			}
		}
	}
	recs, err := tx.FQDNs()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		for _, s := range r.Addrs {
			if p, err := parsePrefix(s); err != nil || !p.Contains(a) {
				continue
			}
			es, err := tx.EntriesByValue(r.Name)
			if err != nil {
				return nil, err
			}
			for _, e := range es {
				if err := addEntry(e, s); err != nil {
					return nil, err
				}
			}
		}
	}
	grants, err := tx.GrantsByIP(a.String())
	if err != nil {
		return nil, err
	}
	for _, g := range grants {
		p, err := parsePrefix(g.IP)
		if err != nil || !p.Contains(a) {
			continue
		}
		m := localapi.Match{Kind: "grant", ID: g.ID, Account: g.Account, Value: g.IP, Perms: g.Perms.String(), Active: true}
		if left := g.Expires.Sub(now); left > 0 {
			m.LeftSec = int64(left.Round(time.Second) / time.Second)
		} else {
			m.Active, m.Why = false, "expired"
		}
		if acct, err := account(g.Account); err != nil {
			return nil, err
		} else if acct == nil || !acct.Enabled {
			m.Active, m.Why = false, "account "+g.Account+" is disabled or gone"
		}
		out = append(out, m)
	}
	return out, nil
}

func explainNotes(a netip.Addr, cfg firewall.Config) []string {
	notes := []string{}
	if a.IsLoopback() {
		notes = append(notes, "loopback: always admitted")
	}
	notes = append(notes, "replies to connections this server opened, and packets of connections already admitted, always pass")
	if cfg.ICMP {
		notes = append(notes, "essential ICMP/ICMPv6 (errors, echo reply, neighbour discovery) passes from everyone")
	}
	var open []string
	for _, o := range cfg.Open {
		open = append(open, o.String())
	}
	if len(open) > 0 {
		notes = append(notes, "open to everyone: "+strings.Join(open, ", "))
	}
	if len(cfg.SIPDomains) > 0 {
		notes = append(notes, fmt.Sprintf("secret SIP domains (%d): a REGISTER for one of them reaches %s from anyone; other REGISTER and OPTIONS are dropped unless whitelisted for SIP",
			len(cfg.SIPDomains), cfg.SIPPorts))
	}
	return notes
}

// verdicts decides each service as the chain does: loopback, LAN, open
// ports, then the sets.
func verdicts(a netip.Addr, want firewall.State, matches []localapi.Match, req localapi.ExplainRequest) []localapi.Verdict {
	cfg := want.Config
	by := func(code int) []string {
		var out []string
		for _, m := range matches {
			if !m.Active {
				continue
			}
			ps, err := auth.ParsePerms(m.Perms)
			if err != nil || !(ps.Has(code) || ps.Has(firewall.CodeAll)) {
				continue
			}
			switch m.Kind {
			case "lan":
				out = append(out, "LAN range "+m.Value)
			case "grant":
				out = append(out, fmt.Sprintf("grant %s of %s (%s left)", m.ID, m.Account, time.Duration(m.LeftSec)*time.Second))
			default:
				s := fmt.Sprintf("%s %s of %s: %s", m.Kind, m.ID, m.Account, m.Value)
				if m.Via != "" {
					s += " -> " + m.Via
				}
				out = append(out, s)
			}
		}
		return out
	}
	loop := a.IsLoopback()
	one := func(code int, ports []firewall.PortRange, proto string, port uint16) localapi.Verdict {
		var ps []string
		for _, p := range ports {
			ps = append(ps, p.String())
		}
		v := localapi.Verdict{Code: code, Service: firewall.CodeName(code), Ports: strings.Join(ps, ", "), By: []string{}}
		switch {
		case loop:
			v.By = append(v.By, "loopback")
		case proto != "" && slices.ContainsFunc(cfg.Open, func(o firewall.PortRange) bool { return o.Contains(proto, port) }):
			v.By = append(v.By, "open to everyone ("+proto+"/"+fmt.Sprint(port)+")")
		}
		v.By = append(v.By, by(code)...)
		v.Admitted = len(v.By) > 0
		if !v.Admitted {
			v.By = []string{"nothing admits it: the final DROP"}
		}
		// The computed state decides, as the kernel does; the reasons
		// above say why. They cannot differ unless this code is wrong.
		if len(ports) > 0 && !loop {
			p := ports[0]
			if got := want.Admits(a, p.Proto, p.From); got != v.Admitted {
				v.By = append(v.By, fmt.Sprintf("(the computed state says admitted=%v for %s/%d: please report this)", got, p.Proto, p.From))
				v.Admitted = got
			}
		}
		return v
	}
	if req.Port != 0 {
		code := 0
		for c := 1; c < firewall.NumCodes; c++ {
			if slices.ContainsFunc(cfg.Services[c], func(p firewall.PortRange) bool { return p.Contains(req.Proto, req.Port) }) {
				code = c
				break
			}
		}
		v := one(code, []firewall.PortRange{{Proto: req.Proto, From: req.Port, To: req.Port}}, req.Proto, req.Port)
		if code == 0 {
			v.Service = "no service"
			if !v.Admitted {
				v.By = []string{"no service uses " + req.Proto + "/" + fmt.Sprint(req.Port) + ": only LAN ranges and code 0 entries and grants reach it"}
			}
		}
		return []localapi.Verdict{v}
	}
	var out []localapi.Verdict
	for code := 1; code < firewall.NumCodes; code++ {
		out = append(out, one(code, cfg.Services[code], "", 0))
	}
	return out
}

// kernelDisagreements compares, code by code, whether the kernel holds a
// member containing a (in any of the code's sets: nftables keeps hosts
// and networks apart) with whether the database says it should.
func kernelDisagreements(a netip.Addr, want firewall.State, st firewall.Status) []string {
	fam := "v4"
	if a.Is6() {
		fam = "v6"
	}
	out := []string{}
	inKernel := map[int][]string{}
	names := map[int][]string{}
	for _, s := range st.Sets {
		if s.Family != fam {
			continue
		}
		names[s.Code] = append(names[s.Code], s.Name)
		if !s.Exists {
			out = append(out, fmt.Sprintf("set %s (%s) is missing from the kernel", s.Name, firewall.CodeName(s.Code)))
			continue
		}
		for _, e := range s.Entries {
			if e.Prefix.Contains(a) {
				inKernel[s.Code] = append(inKernel[s.Code], e.Prefix.String())
			}
		}
	}
	for code := 0; code < firewall.NumCodes; code++ {
		var inDB []string
		for p := range want.Sets[code] {
			if p.Contains(a) {
				inDB = append(inDB, p.String())
			}
		}
		k := inKernel[code]
		slices.Sort(k)
		slices.Sort(inDB)
		if (len(k) > 0) != (len(inDB) > 0) {
			out = append(out, fmt.Sprintf("%s (%s): the kernel holds %s, the database says %s",
				firewall.CodeName(code), strings.Join(names[code], ", "), orNone(k), orNone(inDB)))
		}
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}
