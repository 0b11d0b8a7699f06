package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// IPTables is the Backend built on iptables/ip6tables (through
// coreos/go-iptables) and ipset (through netlink, one message per change,
// no fork/exec).
//
// The netlink socket is bound to the network namespace that is current
// when NewIPTables runs, and iptables commands run in the namespace of the
// calling thread; callers that switch namespaces must do both from the
// same locked OS thread.
type IPTables struct {
	mu    sync.Mutex
	ipt   map[Family]*iptables.IPTables
	nl    *netlink.Handle
	batch *ipsetBatch
	log   *slog.Logger
}

var _ Backend = (*IPTables)(nil)

const (
	table        = "filter"
	hook         = "INPUT"
	setMaxElem   = 1 << 18
	maxSetTimout = 4294967 // seconds: the largest timeout ipset accepts
	tempSuffix   = "-t"
)

var families = []Family{V4, V6}

// NewIPTables checks that iptables, ip6tables and the ipset netlink
// interface are usable and returns a backend.
func NewIPTables(log *slog.Logger) (*IPTables, error) {
	if log == nil {
		log = slog.Default()
	}
	b := &IPTables{ipt: map[Family]*iptables.IPTables{}, log: log}
	for f, proto := range map[Family]iptables.Protocol{V4: iptables.ProtocolIPv4, V6: iptables.ProtocolIPv6} {
		ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Timeout(10))
		if err != nil {
			return nil, fmt.Errorf("firewall: %s iptables unavailable (is the iptables package installed?): %w", f, err)
		}
		b.ipt[f] = ipt
	}
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	b.nl = h
	if _, _, err := b.nl.IpsetProtocol(); err != nil {
		h.Close()
		return nil, fmt.Errorf("firewall: kernel ipset support unavailable (module ip_set not loaded?): %w", err)
	}
	if b.batch, err = newIpsetBatch(); err != nil {
		h.Close()
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return b, nil
}

// Close releases the netlink socket. The kernel rules stay: a server must
// remain protected after dialgate exits.
func (b *IPTables) Close() error {
	b.nl.Close()
	b.batch.close()
	return nil
}

// Apply implements Backend.
func (b *IPTables) Apply(ctx context.Context, want State) error {
	return b.apply(ctx, want, false)
}

// Rebuild implements Backend.
func (b *IPTables) Rebuild(ctx context.Context, want State) error {
	return b.apply(ctx, want, true)
}

func (b *IPTables) apply(ctx context.Context, want State, rebuild bool) error {
	if err := want.Config.Validate(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	start := time.Now()
	// Sets first: the rules refer to them by name.
	var added, removed int
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			if err := ctx.Err(); err != nil {
				return err
			}
			name, members := SetName(code, f), want.members(code, f)
			if rebuild {
				if err := b.replaceSet(name, f, members); err != nil {
					return err
				}
				continue
			}
			a, r, err := b.syncSet(name, f, members)
			if err != nil {
				return err
			}
			added, removed = added+a, removed+r
		}
	}
	rebuilt := false
	for _, f := range families {
		if err := ctx.Err(); err != nil {
			return err
		}
		did, err := b.syncChain(f, want.Config.rules(f), rebuild)
		if err != nil {
			return err
		}
		rebuilt = rebuilt || did
	}
	b.log.Info("firewall applied", "rebuild", rebuild, "chain_rebuilt", rebuilt,
		"added", added, "removed", removed, "duration", time.Since(start))
	return nil
}

// SyncMembers implements Backend.
func (b *IPTables) SyncMembers(ctx context.Context, want State, prefixes []netip.Prefix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range prefixes {
		p = normalize(p)
		f := familyOf(p)
		for code := 0; code < NumCodes; code++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := SetName(code, f)
			if t, ok := want.Sets[code][p]; ok {
				if err := b.setAdd(name, p, t); err != nil {
					return err
				}
				continue
			}
			if err := b.nl.IpsetDel(name, entryOf(p, 0)); err != nil && !isNotExist(err) {
				return fmt.Errorf("firewall: remove %s from %s: %w", p, name, err)
			}
		}
	}
	return nil
}

// AddMember implements Backend.
func (b *IPTables) AddMember(ctx context.Context, code int, m Member) error {
	if err := checkCode(code); err != nil {
		return err
	}
	p := normalize(m.Prefix)
	f := familyOf(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.setAdd(SetName(code, f), p, m.Timeout)
}

// DelMember implements Backend.
func (b *IPTables) DelMember(ctx context.Context, code int, p netip.Prefix) error {
	if err := checkCode(code); err != nil {
		return err
	}
	p = normalize(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.nl.IpsetDel(SetName(code, familyOf(p)), entryOf(p, 0))
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("firewall: remove %s from %s: %w", p, SetName(code, familyOf(p)), err)
	}
	return nil
}

func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return V4
	}
	return V6
}

// --- sets ---

func entryOf(p netip.Prefix, timeout time.Duration) *netlink.IPSetEntry {
	e := &netlink.IPSetEntry{IP: net.IP(p.Addr().AsSlice()), CIDR: uint8(p.Bits()), Replace: true}
	t := timeoutSeconds(timeout)
	e.Timeout = &t
	return e
}

// timeoutSeconds rounds up, so a grant with 300 ms left still gets a
// second rather than becoming permanent (0).
func timeoutSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > maxSetTimout {
		s = maxSetTimout
	}
	return uint32(s)
}

func (b *IPTables) setAdd(name string, p netip.Prefix, timeout time.Duration) error {
	if err := b.nl.IpsetAdd(name, entryOf(p, timeout)); err != nil {
		return fmt.Errorf("firewall: add %s to %s: %w", p, name, err)
	}
	return nil
}

func (b *IPTables) createSet(name string, f Family) error {
	family := uint8(unix.AF_INET)
	if f == V6 {
		family = unix.AF_INET6
	}
	zero := uint32(0)
	err := b.nl.IpsetCreate(name, "hash:net", netlink.IpsetCreateOptions{
		Family: family, Timeout: &zero, MaxElements: setMaxElem,
	})
	if err != nil {
		return fmt.Errorf("firewall: create set %s: %w", name, err)
	}
	return nil
}

// listSet returns the set's members, or ok=false when it does not exist.
func (b *IPTables) listSet(name string) (members map[netip.Prefix]time.Duration, timeouts bool, ok bool, err error) {
	res, err := b.nl.IpsetList(name)
	if err != nil {
		if isNotExist(err) {
			return nil, false, false, nil
		}
		return nil, false, false, fmt.Errorf("firewall: list set %s: %w", name, err)
	}
	members = make(map[netip.Prefix]time.Duration, len(res.Entries))
	for _, e := range res.Entries {
		addr, okAddr := netip.AddrFromSlice(e.IP)
		if !okAddr {
			continue
		}
		p := netip.PrefixFrom(addr.Unmap(), int(e.CIDR))
		var t time.Duration
		if e.Timeout != nil {
			t = time.Duration(*e.Timeout) * time.Second
		}
		members[p] = t
	}
	return members, res.Timeout != nil, true, nil
}

// syncSet adds and removes members one by one; a set that is missing or
// was created without timeout support is replaced instead.
func (b *IPTables) syncSet(name string, f Family, want []Member) (added, removed int, err error) {
	have, timeouts, ok, err := b.listSet(name)
	if err != nil {
		return 0, 0, err
	}
	if !ok || !timeouts {
		return len(want), len(have), b.replaceSet(name, f, want)
	}
	wanted := make(map[netip.Prefix]bool, len(want))
	var missing []Member
	for _, m := range want {
		wanted[m.Prefix] = true
		cur, present := have[m.Prefix]
		if present && !timeoutDiffers(cur, m.Timeout) {
			continue
		}
		missing = append(missing, m)
	}
	if err := b.batch.add(name, missing); err != nil {
		return added, removed, fmt.Errorf("firewall: %w", err)
	}
	added = len(missing)
	for p := range have {
		if wanted[p] {
			continue
		}
		if err := b.nl.IpsetDel(name, entryOf(p, 0)); err != nil && !isNotExist(err) {
			return added, removed, fmt.Errorf("firewall: remove %s from %s: %w", p, name, err)
		}
		removed++
	}
	return added, removed, nil
}

// timeoutDiffers tells whether a kernel entry must be rewritten: it is
// permanent where a timeout is wanted or the reverse, or its time left is
// off by more than the kernel's one-second granularity allows.
func timeoutDiffers(have, want time.Duration) bool {
	if (have == 0) != (want == 0) {
		return true
	}
	d := have - want
	return d > 2*time.Second || d < -2*time.Second
}

// replaceSet fills a temporary set and swaps it with the live one, so a
// packet sees either the old members or the new, never a partial set.
func (b *IPTables) replaceSet(name string, f Family, want []Member) error {
	tmp := name + tempSuffix
	if err := b.destroySet(tmp); err != nil {
		return err
	}
	if err := b.createSet(tmp, f); err != nil {
		return err
	}
	if err := b.batch.add(tmp, want); err != nil {
		b.destroySet(tmp) //nolint:errcheck // already failing; the live set is untouched
		return fmt.Errorf("firewall: %w", err)
	}
	if _, _, ok, err := b.listSet(name); err != nil {
		return err
	} else if !ok {
		if err := b.createSet(name, f); err != nil {
			return err
		}
	}
	if err := b.nl.IpsetSwap(tmp, name); err != nil {
		return fmt.Errorf("firewall: swap %s into %s: %w", tmp, name, err)
	}
	return b.destroySet(tmp)
}

func (b *IPTables) destroySet(name string) error {
	if err := b.nl.IpsetDestroy(name); err != nil && !isNotExist(err) {
		return fmt.Errorf("firewall: destroy set %s: %w", name, err)
	}
	return nil
}

// isNotExist reports the kernel saying the set does not exist (ENOENT)
// or, for a delete, that the element is not in it (IPSET_ERR_EXIST).
func isNotExist(err error) bool {
	var ie nl.IPSetError
	return errors.Is(err, syscall.ENOENT) || (errors.As(err, &ie) && ie == nl.IPSET_ERR_EXIST)
}

// --- chain ---

// tableState is what one `iptables -S` shows of the filter table: the
// INPUT rule numbers (1-based) of jumps to our chains, which chains
// exist, and the fingerprint and size of the DIALGATE chain. One process
// per family instead of one per question keeps a no-op Apply cheap.
type tableState struct {
	jumps  map[int]string
	chains map[string]bool
	fp     string
	rules  int
}

func (b *IPTables) readTable(f Family) (tableState, error) {
	bin := "iptables"
	if f == V6 {
		bin = "ip6tables"
	}
	out, err := exec.Command(bin, "-w", "-t", table, "-S").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return tableState{}, fmt.Errorf("%s -S: %w", bin, err)
	}
	return parseTable(string(out)), nil
}

func parseTable(out string) tableState {
	ts := tableState{jumps: map[int]string{}, chains: map[string]bool{}}
	n := 0
	for _, r := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(r, "-N "):
			ts.chains[strings.TrimPrefix(r, "-N ")] = true
		case strings.HasPrefix(r, "-A "+hook+" "):
			n++
			switch r {
			case "-A " + hook + " -j " + Chain:
				ts.jumps[n] = Chain
			case "-A " + hook + " -j " + chainSpare:
				ts.jumps[n] = chainSpare
			}
		case strings.HasPrefix(r, "-A "+Chain+" "):
			ts.rules++
			if ts.rules == 1 {
				if i := strings.Index(r, commentPrefix); i >= 0 {
					ts.fp = strings.Trim(strings.Fields(r[i+len(commentPrefix):])[0], `"`)
				}
			}
		}
	}
	return ts
}

// syncChain makes family f's chain equal want, jumped to first from
// INPUT. Unless forced, a chain whose fingerprint and size already match
// is left alone and only the jump position is repaired.
func (b *IPTables) syncChain(f Family, want [][]string, force bool) (rebuilt bool, err error) {
	ipt := b.ipt[f]
	ts, err := b.readTable(f)
	if err != nil {
		return false, fmt.Errorf("firewall: %s: %w", f, err)
	}
	js := ts.jumps
	live := js[1]
	if !force && live == Chain && ts.fp == fingerprint0(want) && ts.rules == len(want) {
		return false, b.fixJumps(f, Chain, js)
	}
	if live == "" {
		// No jump in first place: the chain it points to (if any) may be
		// stale; still build beside it, never flush what INPUT uses.
		for _, c := range js {
			live = c
			break
		}
	}
	target, other := Chain, chainSpare
	if live == Chain {
		target, other = chainSpare, Chain
	}
	if err := b.swapChain(f, target, other, ts.chains[other], want, js); err != nil {
		return false, fmt.Errorf("firewall: %s: %w", f, err)
	}
	if target == chainSpare {
		if err := ipt.RenameChain(table, chainSpare, Chain); err != nil {
			return false, fmt.Errorf("firewall: %s: rename %s: %w", f, chainSpare, err)
		}
	}
	return true, nil
}

// swapChain builds target, points INPUT at it and drops every other jump
// and the old chain, all in one iptables-restore transaction: the kernel
// switches from the old rules to the new in one step, and if anything in
// the batch fails nothing changes.
func (b *IPTables) swapChain(f Family, target, other string, otherExists bool, rules [][]string, js map[int]string) error {
	var sb strings.Builder
	sb.WriteString("*filter\n:" + target + " - [0:0]\n")
	for _, r := range rules {
		sb.WriteString("-A " + target + " " + restoreArgs(r) + "\n")
	}
	sb.WriteString("-I " + hook + " 1 -j " + target + "\n")
	// Our insert shifted every old jump down by one; delete bottom-up so
	// the numbers stay valid.
	nums := slices.Sorted(maps.Keys(js))
	slices.Reverse(nums)
	for _, n := range nums {
		fmt.Fprintf(&sb, "-D %s %d\n", hook, n+1)
	}
	if otherExists {
		sb.WriteString("-F " + other + "\n-X " + other + "\n")
	}
	sb.WriteString("COMMIT\n")
	bin := "iptables-restore"
	if f == V6 {
		bin = "ip6tables-restore"
	}
	cmd := exec.Command(bin, "--noflush", "-w")
	cmd.Stdin = strings.NewReader(sb.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// restoreArgs joins rule arguments for iptables-restore, quoting the ones
// with spaces ("REGISTER sip:..."). Arguments come from validated config
// (ports, prefixes, set names, SIP domains): none holds a quote or a
// newline, so quoting cannot be escaped.
func restoreArgs(r []string) string {
	out := make([]string, len(r))
	for i, a := range r {
		if strings.ContainsAny(a, " \t") {
			a = `"` + a + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func fingerprint0(rules [][]string) string {
	c := rules[0]
	return strings.TrimPrefix(c[len(c)-3], commentPrefix)
}

// fixJumps leaves exactly one jump, to keep, in first position.
func (b *IPTables) fixJumps(f Family, keep string, js map[int]string) error {
	ipt := b.ipt[f]
	if js[1] != keep {
		if err := ipt.Insert(table, hook, 1, "-j", keep); err != nil {
			return fmt.Errorf("firewall: jump to %s: %w", keep, err)
		}
		ts, err := b.readTable(f)
		if err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
		js = ts.jumps
	}
	// Delete from the bottom so the numbers above stay valid.
	nums := slices.Sorted(maps.Keys(js))
	slices.Reverse(nums)
	for _, n := range nums {
		if n == 1 {
			continue
		}
		if err := ipt.DeleteById(table, hook, n); err != nil {
			return fmt.Errorf("firewall: delete stale jump %d: %w", n, err)
		}
	}
	return nil
}

// --- status and removal ---

// Status implements Backend.
func (b *IPTables) Status(ctx context.Context) (Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var st Status
	for _, f := range families {
		fs := FamilyStatus{Family: f.String()}
		ts, err := b.readTable(f)
		if err != nil {
			return st, fmt.Errorf("firewall: %s: %w", f, err)
		}
		fs.JumpFirst = ts.jumps[1] == Chain
		fs.ChainLoaded, fs.Rules, fs.Fingerprint = ts.chains[Chain], ts.rules, ts.fp
		st.Families = append(st.Families, fs)
	}
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			ss := SetStatus{Name: SetName(code, f), Code: code, Family: f.String()}
			members, _, ok, err := b.listSet(ss.Name)
			if err != nil {
				return st, err
			}
			ss.Exists = ok
			for p, t := range members {
				ss.Entries = append(ss.Entries, SetEntry{Prefix: p, Timeout: t})
			}
			sortEntries(ss.Entries)
			st.Sets = append(st.Sets, ss)
		}
	}
	return st, nil
}

// Remove implements Backend. It is what an administrator runs to take
// dialgate out of a server: jumps first, so traffic falls back to the
// host's own rules, then chains, then the sets they referenced.
func (b *IPTables) Remove(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range families {
		ipt := b.ipt[f]
		for _, c := range []string{Chain, chainSpare} {
			for {
				ok, err := ipt.Exists(table, hook, "-j", c)
				if err != nil || !ok {
					break
				}
				if err := ipt.Delete(table, hook, "-j", c); err != nil {
					errs = append(errs, fmt.Errorf("%s: delete jump to %s: %w", f, c, err))
					break
				}
			}
			if ok, _ := ipt.ChainExists(table, c); ok {
				if err := ipt.ClearAndDeleteChain(table, c); err != nil {
					errs = append(errs, fmt.Errorf("%s: delete chain %s: %w", f, c, err))
				}
			}
		}
	}
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			for _, n := range []string{SetName(code, f), SetName(code, f) + tempSuffix} {
				if err := b.destroySet(n); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("firewall: remove: %w", err)
	}
	b.log.Info("firewall removed")
	return nil
}
