package firewall

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
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
	// ns is our descriptor of the namespace current when NewIPTables
	// ran; nsID identifies it. iptables commands run there (see inNS),
	// whichever thread calls.
	ns   int
	nsID nsID
	// known is each family's chain as this backend last wrote it and
	// read it back: Apply and Verify compare the kernel's with it, so a
	// rule replaced in place (same count, same fingerprint comment) is
	// found too. Guarded by mu.
	known  map[Family]chainPrint
	closed bool
	// changes counts the calls that may have changed the kernel.
	changes atomic.Uint64
}

// Changes implements ChangeCounter.
func (b *IPTables) Changes() uint64 { return b.changes.Load() }

// chainPrint identifies the rules of a chain as `iptables -S` prints
// them: the fingerprint comment dialgate wrote and a digest of every
// line.
type chainPrint struct{ fp, render string }

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
	b := &IPTables{ipt: map[Family]*iptables.IPTables{}, log: log, known: map[Family]chainPrint{}}
	ns, id, err := currentNS()
	if err != nil {
		return nil, fmt.Errorf("firewall: network namespace: %w", err)
	}
	b.ns, b.nsID = ns, id
	for f, proto := range map[Family]iptables.Protocol{V4: iptables.ProtocolIPv4, V6: iptables.ProtocolIPv6} {
		ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Timeout(10))
		if err != nil {
			unix.Close(ns)
			return nil, fmt.Errorf("firewall: %s iptables unavailable (is the iptables package installed?): %w", f, err)
		}
		b.ipt[f] = ipt
	}
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		unix.Close(ns)
		return nil, fmt.Errorf("firewall: netlink: %w", err)
	}
	b.nl = h
	if _, _, err := b.nl.IpsetProtocol(); err != nil {
		h.Close()
		unix.Close(ns)
		return nil, fmt.Errorf("firewall: kernel ipset support unavailable (module ip_set not loaded?): %w", err)
	}
	if b.batch, err = newIpsetBatch(); err != nil {
		h.Close()
		unix.Close(ns)
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return b, nil
}

// Close releases the netlink sockets. The kernel rules stay: a server
// must remain protected after dialgate exits.
func (b *IPTables) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.nl.Close()
	b.batch.close()
	unix.Close(b.ns)
	b.closed = true
	return nil
}

// inNS runs fn, which runs iptables commands, in the backend's
// namespace: at once when the calling thread is there already (always,
// in the daemon), else on a thread of its own switched there for the
// call. A command starts in the namespace of the thread that starts it,
// so without this a caller on another thread (a watchdog goroutine in a
// test) would edit its own namespace's firewall.
func (b *IPTables) inNS(fn func() error) error {
	if id, err := threadNS(); err == nil && id == b.nsID {
		return fn()
	}
	return runInNS(b.ns, fn)
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
	b.changes.Add(1)
	if err := want.Config.Validate(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errIPTClosed
	}
	return b.inNS(func() error { return b.applyLocked(ctx, want, rebuild) })
}

var errIPTClosed = errors.New("firewall: iptables: backend closed")

func (b *IPTables) applyLocked(ctx context.Context, want State, rebuild bool) error {
	start := time.Now()
	// Leftovers of a rebuild killed half-way: its temporary sets.
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			if err := b.destroySet(SetName(code, f) + tempSuffix); err != nil {
				return err
			}
		}
	}
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
	for _, f := range families {
		if err := b.ensureDropSets(f); err != nil {
			return err
		}
		if err := b.ensureBlockSet(f); err != nil {
			return err
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
	b.changes.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(prefixes) > syncOneByOne {
		return b.syncMany(ctx, want, prefixes)
	}
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

// syncOneByOne is the most prefixes SyncMembers syncs with a message per
// set and prefix (a grant, an entry: a handful of round trips). Beyond
// it, a bulk change (an import, an account with thousands of entries)
// reads the sets once and sends only the differences, in batches.
const syncOneByOne = 16

// syncMany is SyncMembers for many prefixes: one dump of the sets, then
// the adds and removals each set needs, batched.
func (b *IPTables) syncMany(ctx context.Context, want State, prefixes []netip.Prefix) error {
	sets, err := b.dumpSets()
	if err != nil {
		return err
	}
	type change struct{ add, del []Member }
	changes := map[string]*change{}
	at := func(name string) *change {
		c := changes[name]
		if c == nil {
			c = &change{}
			changes[name] = c
		}
		return c
	}
	seen := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		p = normalize(p)
		if seen[p] {
			continue
		}
		seen[p] = true
		f := familyOf(p)
		for code := 0; code < NumCodes; code++ {
			name := SetName(code, f)
			set := sets[name]
			if set == nil {
				return fmt.Errorf("firewall: set %s is missing (dialgate reload rebuilds it)", name)
			}
			cur, present := set.members[p]
			if t, ok := want.Sets[code][p]; ok {
				if !present || timeoutDiffers(cur, t) {
					at(name).add = append(at(name).add, Member{Prefix: p, Timeout: t})
				}
			} else if present {
				at(name).del = append(at(name).del, Member{Prefix: p})
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(changes))
	// Adds first: a member moving between sets is never in none of them.
	for _, name := range names {
		if err := b.batch.add(name, changes[name].add); err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
	}
	for _, name := range names {
		if err := b.batch.del(name, changes[name].del); err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
	}
	return nil
}

// AddMember implements Backend.
func (b *IPTables) AddMember(ctx context.Context, code int, m Member) error {
	b.changes.Add(1)
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
	b.changes.Add(1)
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

// ensureDropSets creates family f's drop accounting sets (see drops.go)
// unless they exist as dialgate makes them; one that exists otherwise
// is destroyed and made anew. Their members are never touched.
func (b *IPTables) ensureDropSets(f Family) error {
	family := uint8(unix.AF_INET)
	if f == V6 {
		family = unix.AF_INET6
	}
	timeout := uint32(DropsTimeout / time.Second)
	for _, s := range []struct {
		name     string
		counters bool
	}{{DropsSetName(f), true}, {SeenSetName(f), false}} {
		opts := netlink.IpsetCreateOptions{Replace: true, Family: family, Timeout: &timeout, MaxElements: DropsMaxElem, Counters: s.counters}
		if err := b.nl.IpsetCreate(s.name, "hash:ip,port", opts); err == nil {
			continue
		}
		// It exists with other options (replace means "or an identical
		// one exists"): make it anew.
		if err := b.destroySet(s.name); err != nil {
			return err
		}
		if err := b.nl.IpsetCreate(s.name, "hash:ip,port", opts); err != nil {
			return fmt.Errorf("firewall: create set %s: %w", s.name, err)
		}
	}
	return nil
}

// ensureBlockSet creates family f's block set (see blocks.go) unless it
// exists as dialgate makes it: hash:ip, timeout support with no default
// (each member carries its own), at most BlockMaxElem members. Its
// members are never touched: they survive Apply and Rebuild. One that
// exists otherwise is destroyed and made anew (the kernel refuses while
// a rule refers to it, and the error says so).
func (b *IPTables) ensureBlockSet(f Family) error {
	family := uint8(unix.AF_INET)
	if f == V6 {
		family = unix.AF_INET6
	}
	zero := uint32(0)
	name := BlockSetName(f)
	opts := netlink.IpsetCreateOptions{Replace: true, Family: family, Timeout: &zero, MaxElements: BlockMaxElem}
	if err := b.nl.IpsetCreate(name, "hash:ip", opts); err == nil {
		return nil
	}
	if err := b.destroySet(name); err != nil {
		return err
	}
	if err := b.nl.IpsetCreate(name, "hash:ip", opts); err != nil {
		return fmt.Errorf("firewall: create set %s: %w", name, err)
	}
	return nil
}

// Drops implements Backend: one listing of each accounting set, parsed
// by hand (the general-purpose parser takes seconds for a full set).
func (b *IPTables) Drops(ctx context.Context) ([]Drop, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errIPTClosed
	}
	now := time.Now()
	var out []Drop
	type key struct {
		addr  netip.Addr
		proto uint8
		port  uint16
	}
	for _, f := range families {
		seen := map[key]time.Duration{}
		err := b.batch.list(SeenSetName(f), func(m []byte) {
			parseDropEntries(m, func(e dropEntry) { seen[key{e.addr, e.proto, e.port}] = e.left })
		})
		if err != nil && !isNotExist(err) {
			return nil, fmt.Errorf("firewall: list set %s: %w", SeenSetName(f), err)
		}
		err = b.batch.list(DropsSetName(f), func(m []byte) {
			parseDropEntries(m, func(e dropEntry) {
				d := Drop{Addr: e.addr, Proto: protoName(e.proto), Port: e.port, Packets: e.packets}
				if !hasPorts(d.Proto) {
					d.Port = 0 // ipset keeps the ICMP type and code there
				}
				left, ok := seen[key{e.addr, e.proto, e.port}]
				if !ok {
					// Not in the seen set (it cannot outlive it, but a
					// hand edit): the count's first drop is all we know.
					left = e.left
				}
				d.LastSeen = lastSeen(now, left)
				out = append(out, d)
			})
		})
		if err != nil && !isNotExist(err) {
			return nil, fmt.Errorf("firewall: list set %s: %w", DropsSetName(f), err)
		}
	}
	return out, ctx.Err()
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

// syncSet adds and removes the members that differ, in batches; a set that is missing or
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
	var gone []Member
	for p := range have {
		if !wanted[p] {
			gone = append(gone, Member{Prefix: p})
		}
	}
	if err := b.batch.del(name, gone); err != nil {
		return added, removed, fmt.Errorf("firewall: %w", err)
	}
	return added, len(gone), nil
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
	if err := retryBusy(func() error { return b.nl.IpsetSwap(tmp, name) }); err != nil {
		return fmt.Errorf("firewall: swap %s into %s: %w", tmp, name, err)
	}
	return b.destroySet(tmp)
}

func (b *IPTables) destroySet(name string) error {
	if err := retryBusy(func() error { return b.nl.IpsetDestroy(name) }); err != nil && !isNotExist(err) {
		return fmt.Errorf("firewall: destroy set %s: %w", name, err)
	}
	return nil
}

// retryBusy runs op again while the kernel answers EBUSY, for up to a
// second: ipset refuses to swap or destroy a set while a listing of it
// is under way (`ipset list`, or another dialgate's status or watchdog
// in the same namespace), and that lasts milliseconds.
func retryBusy(op func() error) error {
	deadline := time.Now().Add(time.Second)
	for {
		err := op()
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
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
// exist, the fingerprint, size and digest of the DIALGATE chain, and
// INPUT's policy and rules with every chain's rules, to judge what runs
// ahead of the jump. One process per family instead of one per question
// keeps a no-op Apply, and a Verify, cheap.
type tableState struct {
	jumps  map[int]string
	chains map[string]bool
	fp     string
	rules  int
	render string
	policy string
	input  []string // INPUT's rules, without "-A INPUT "
	// chainRules holds the other chains' rules, without "-A <chain> ",
	// parsed only when a rule ahead of the jump leads to them.
	chainRules map[string][]string
	judged     map[string]verdict
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
	ts := tableState{jumps: map[int]string{}, chains: map[string]bool{}, chainRules: map[string][]string{}, judged: map[string]verdict{}}
	h := sha256.New()
	for _, r := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(r, "-N "):
			ts.chains[strings.TrimPrefix(r, "-N ")] = true
		case strings.HasPrefix(r, "-P "+hook+" "):
			ts.policy = strings.TrimPrefix(r, "-P "+hook+" ")
		case strings.HasPrefix(r, "-A "+hook+" "):
			ts.input = append(ts.input, strings.TrimPrefix(r, "-A "+hook+" "))
			switch r {
			case "-A " + hook + " -j " + Chain:
				ts.jumps[len(ts.input)] = Chain
			case "-A " + hook + " -j " + chainSpare:
				ts.jumps[len(ts.input)] = chainSpare
			}
		case strings.HasPrefix(r, "-A "+Chain+" "):
			ts.rules++
			h.Write([]byte(r))
			h.Write([]byte{'\n'})
			if ts.rules == 1 {
				if i := strings.Index(r, commentPrefix); i >= 0 {
					ts.fp = strings.Trim(strings.Fields(r[i+len(commentPrefix):])[0], `"`)
				}
			}
		case strings.HasPrefix(r, "-A "):
			name, rule, _ := strings.Cut(r[3:], " ")
			ts.chainRules[name] = append(ts.chainRules[name], rule)
		}
	}
	if ts.rules > 0 {
		ts.render = hex.EncodeToString(h.Sum(nil))[:16]
	}
	return ts
}

// jumpPlace works out where dialgate's jump belongs: where the first
// jump is when only harmless rules are ahead of it (fail2ban's stay in
// front), else first in INPUT.
func (ts *tableState) jumpPlace() (pos int, live string, keep int, ahead []AheadRule) {
	pos, live = ts.firstJump()
	keep = 1
	if pos > 0 {
		ahead = ts.ahead(pos)
		if inForce(ahead) {
			keep = pos
		}
	}
	return pos, live, keep, ahead
}

// syncChain makes family f's chain equal want, in force in INPUT. Unless
// forced, a chain whose fingerprint, size and printed rules already
// match is left alone and only the jump is repaired.
func (b *IPTables) syncChain(f Family, want [][]string, force bool) (rebuilt bool, err error) {
	ipt := b.ipt[f]
	ts, err := b.readTable(f)
	if err != nil {
		return false, fmt.Errorf("firewall: %s: %w", f, err)
	}
	if ts.chains[chainProbe] { // a learnPrint killed half-way
		if err := ipt.ClearAndDeleteChain(table, chainProbe); err != nil {
			return false, fmt.Errorf("firewall: %s: delete leftover %s: %w", f, chainProbe, err)
		}
	}
	_, live, keep, _ := ts.jumpPlace()
	fp := fingerprint0(want)
	if !force && live == Chain && ts.fp == fp && ts.rules == len(want) {
		if b.known[f].fp != fp {
			// How iptables prints these rules is not known yet (a new
			// process, or new rules): find out on a scratch chain rather
			// than trust what the live chain shows.
			render, err := b.learnPrint(f, want)
			if err != nil {
				return false, fmt.Errorf("firewall: %s: %w", f, err)
			}
			b.known[f] = chainPrint{fp, render}
		}
		if b.known[f].render == ts.render {
			if err := b.fixJumps(f, Chain, ts.jumps, keep); err != nil {
				return false, err
			}
			if ts.chains[chainSpare] { // a rebuild's spare chain, left behind
				if err := ipt.ClearAndDeleteChain(table, chainSpare); err != nil {
					return false, fmt.Errorf("firewall: %s: delete leftover %s: %w", f, chainSpare, err)
				}
			}
			return false, nil
		}
	}
	// Without a live jump the chain it points to (if any) may be stale;
	// build beside the jumped-to chain, never flush what INPUT uses.
	target, other := Chain, chainSpare
	if live == Chain {
		target, other = chainSpare, Chain
	}
	if err := b.swapChain(f, target, other, ts.chains[other], want, ts.jumps, keep); err != nil {
		return false, fmt.Errorf("firewall: %s: %w", f, err)
	}
	if target == chainSpare {
		if err := ipt.RenameChain(table, chainSpare, Chain); err != nil {
			return false, fmt.Errorf("firewall: %s: rename %s: %w", f, chainSpare, err)
		}
	}
	// Read back what the kernel made of the rules, for the next Apply
	// and Verify to compare with.
	if ts, err = b.readTable(f); err != nil {
		return true, fmt.Errorf("firewall: %s: %w", f, err)
	}
	b.known[f] = chainPrint{ts.fp, ts.render}
	return true, nil
}

// chainProbe is the scratch chain learnPrint writes rules to.
const chainProbe = "DIALGATE-PRINT"

// learnPrint finds out how iptables prints rules (`iptables -S`
// normalises what it is given: match modules added, ICMP type names as
// numbers, states reordered): it writes them to a scratch chain no rule
// jumps to, reads that back and deletes it, and returns the digest
// parseTable would compute for a DIALGATE chain holding them. The live
// chain is never touched.
func (b *IPTables) learnPrint(f Family, rules [][]string) (string, error) {
	var sb strings.Builder
	sb.WriteString("*filter\n:" + chainProbe + " - [0:0]\n")
	for _, r := range rules {
		sb.WriteString("-A " + chainProbe + " " + restoreArgs(r) + "\n")
	}
	sb.WriteString("COMMIT\n")
	if err := restore(f, sb.String()); err != nil {
		return "", err
	}
	bin := "iptables"
	if f == V6 {
		bin = "ip6tables"
	}
	out, err := exec.Command(bin, "-w", "-t", table, "-S", chainProbe).Output()
	derr := restore(f, "*filter\n-F "+chainProbe+"\n-X "+chainProbe+"\nCOMMIT\n")
	if err != nil {
		return "", fmt.Errorf("%s -S %s: %w", bin, chainProbe, err)
	}
	if derr != nil {
		return "", derr
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "-A "+chainProbe+" "); ok {
			lines = append(lines, "-A "+Chain+" "+rest)
		}
	}
	return parseTable(strings.Join(lines, "\n")).render, nil
}

// restore runs iptables-restore --noflush with script.
func restore(f Family, script string) error {
	bin := "iptables-restore"
	if f == V6 {
		bin = "ip6tables-restore"
	}
	cmd := exec.Command(bin, "--noflush", "-w")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// swapChain builds target, points INPUT at it (at position at) and drops
// every other jump and the old chain, all in one iptables-restore
// transaction: the kernel switches from the old rules to the new in one
// step, and if anything in the batch fails nothing changes.
func (b *IPTables) swapChain(f Family, target, other string, otherExists bool, rules [][]string, js map[int]string, at int) error {
	var sb strings.Builder
	sb.WriteString("*filter\n:" + target + " - [0:0]\n")
	for _, r := range rules {
		sb.WriteString("-A " + target + " " + restoreArgs(r) + "\n")
	}
	fmt.Fprintf(&sb, "-I %s %d -j %s\n", hook, at, target)
	// Our insert shifted the old jumps at or below it down by one;
	// delete bottom-up so the numbers stay valid.
	nums := slices.Sorted(maps.Keys(js))
	slices.Reverse(nums)
	for _, n := range nums {
		if n >= at {
			n++
		}
		fmt.Fprintf(&sb, "-D %s %d\n", hook, n)
	}
	if otherExists {
		sb.WriteString("-F " + other + "\n-X " + other + "\n")
	}
	sb.WriteString("COMMIT\n")
	return restore(f, sb.String())
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

// fixJumps leaves exactly one jump, to keep, at position at: where it
// is when only harmless rules are ahead of it, else first.
func (b *IPTables) fixJumps(f Family, keep string, js map[int]string, at int) error {
	ipt := b.ipt[f]
	if js[at] != keep {
		if err := ipt.Insert(table, hook, 1, "-j", keep); err != nil {
			return fmt.Errorf("firewall: jump to %s: %w", keep, err)
		}
		ts, err := b.readTable(f)
		if err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
		js, at = ts.jumps, 1
	}
	// Delete from the bottom so the numbers above stay valid.
	nums := slices.Sorted(maps.Keys(js))
	slices.Reverse(nums)
	for _, n := range nums {
		if n == at {
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
	if b.closed {
		return Status{}, errIPTClosed
	}
	var st Status
	var fpbx, f2b []string
	err := b.inNS(func() error {
		for _, f := range families {
			ts, err := b.readTable(f)
			if err != nil {
				return fmt.Errorf("firewall: %s: %w", f, err)
			}
			pos, live, _, ahead := ts.jumpPlace()
			fs := FamilyStatus{Family: f.String(), JumpPosition: pos, Ahead: ahead}
			fs.JumpFirst = live == Chain && inForce(ahead)
			fs.ChainLoaded, fs.Rules, fs.Fingerprint = ts.chains[Chain], ts.rules, ts.fp
			st.Families = append(st.Families, fs)
			for _, c := range ts.freePBXChains() {
				if !slices.Contains(fpbx, c) {
					fpbx = append(fpbx, c)
				}
			}
			for _, c := range fail2banAhead(ahead) {
				if !slices.Contains(f2b, c) {
					f2b = append(f2b, c)
				}
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	sets, err := b.dumpSets()
	if err != nil {
		return st, err
	}
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			ss := SetStatus{Name: SetName(code, f), Code: code, Family: f.String()}
			if d := sets[ss.Name]; d != nil {
				ss.Exists = true
				for p, t := range d.members {
					ss.Entries = append(ss.Entries, SetEntry{Prefix: p, Timeout: t})
				}
			}
			sortEntries(ss.Entries)
			st.Sets = append(st.Sets, ss)
		}
	}
	if len(fpbx) > 0 {
		slices.Sort(fpbx)
		st.Coexistence = append(st.Coexistence, noteFreePBXIPTables(fpbx))
	}
	if len(f2b) > 0 {
		st.Coexistence = append(st.Coexistence, noteFail2ban(f2b))
	}
	// nftables tables beside the iptables rules: the nftables backend's,
	// or the FreePBX Firewall's own (FreePBX 18).
	if c, err := nftables.New(nftables.WithNetNSFd(b.ns)); err == nil {
		if tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err == nil {
			for _, t := range tables {
				switch t.Name {
				case NFTTable:
					st.Coexistence = append(st.Coexistence, noteOtherNFT)
				case fpbxNFTTable:
					st.Coexistence = append(st.Coexistence, noteFreePBXNFT)
				}
			}
		}
	}
	return st, ctx.Err()
}

// setDump is one of dialgate's ipsets as a dump shows it.
type setDump struct {
	timeouts bool
	members  map[netip.Prefix]time.Duration
}

// dumpSets reads every ipset with its members in one netlink dump (the
// `ipset list` request) and keeps dialgate's, by name.
func (b *IPTables) dumpSets() (map[string]*setDump, error) {
	sets, err := b.batch.dump("dialgate-")
	if err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return sets, nil
}

// Verify implements Backend: one `iptables -S` per family and one dump
// of the sets.
func (b *IPTables) Verify(ctx context.Context, want State) (Drift, error) {
	var d Drift
	loaded := false
	if err := want.Config.Validate(); err != nil {
		return d, fmt.Errorf("firewall: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return d, errIPTClosed
	}
	err := b.inNS(func() error {
		for _, f := range families {
			ts, err := b.readTable(f)
			if err != nil {
				return fmt.Errorf("firewall: %s: %w", f, err)
			}
			b.verifyChain(&d, f, &ts, want.Config.rules(f))
			loaded = loaded || ts.chains[Chain] || ts.chains[chainSpare]
		}
		return nil
	})
	if err != nil {
		return d, err
	}
	sets, err := b.dumpSets()
	if err != nil {
		return d, err
	}
	for _, f := range families {
		for _, name := range []string{DropsSetName(f), SeenSetName(f)} {
			if sets[name] == nil {
				d.add(DriftSet, f, "drop accounting set %s is missing", name)
			}
		}
	}
	// The block sets' members are the daemon's runtime decisions, never
	// drift; a missing block set is, once the firewall is loaded.
	if loaded {
		for _, f := range families {
			switch s := sets[BlockSetName(f)]; {
			case s == nil:
				d.add(DriftSet, f, "block set %s is missing", BlockSetName(f))
			case !s.timeouts:
				d.add(DriftSet, f, "block set %s was made without timeout support", BlockSetName(f))
			}
		}
	}
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			name := SetName(code, f)
			if _, ok := sets[name+tempSuffix]; ok {
				d.add(DriftLeftover, f, "temporary set %s left by an interrupted rebuild", name+tempSuffix)
			}
			s := sets[name]
			switch {
			case s == nil:
				d.add(DriftSet, f, "set %s is missing", name)
			case !s.timeouts:
				d.add(DriftSet, f, "set %s was made without timeout support", name)
			default:
				if diff := MemberDiff(want.Sets[code], f.has, s.members); diff != "" {
					d.add(DriftMembers, f, "set %s: %s", name, diff)
				}
			}
		}
	}
	return d, ctx.Err()
}

// verifyChain compares one family's table with the rules wanted.
func (b *IPTables) verifyChain(d *Drift, f Family, ts *tableState, rules [][]string) {
	switch fp := fingerprint0(rules); {
	case !ts.chains[Chain]:
		d.add(DriftChain, f, "chain %s is missing", Chain)
	case ts.rules != len(rules):
		d.add(DriftChain, f, "chain %s has %d rules, the configuration makes %d", Chain, ts.rules, len(rules))
	case ts.fp != fp:
		d.add(DriftChain, f, "chain %s holds other rules than the configuration's (fingerprint %q, want %q)", Chain, ts.fp, fp)
	default:
		if k := b.known[f]; k.fp == ts.fp && k.render != ts.render {
			d.add(DriftChain, f, "a rule of chain %s was changed in place", Chain)
		}
	}
	pos, live, _, ahead := ts.jumpPlace()
	switch {
	case pos == 0:
		d.add(DriftJump, f, "no jump to %s in %s: nothing dialgate says is enforced", Chain, hook)
	case live == chainSpare:
		d.add(DriftLeftover, f, "%s jumps to %s, left by an interrupted rebuild", hook, chainSpare)
	}
	for i, a := range ahead {
		if !a.Harmless {
			d.add(DriftJump, f, "%s rule %d, ahead of dialgate's jump (rule %d), %s: %s", hook, i+1, pos, a.Why, a.Rule)
		}
	}
	if n := len(ts.jumps); n > 1 {
		d.add(DriftJump, f, "%d jumps to dialgate's chains in %s, want one", n, hook)
	}
	if ts.chains[chainSpare] && live != chainSpare {
		d.add(DriftLeftover, f, "chain %s left by an interrupted rebuild", chainSpare)
	}
	if ts.chains[chainProbe] {
		d.add(DriftLeftover, f, "scratch chain %s left by an interrupted apply", chainProbe)
	}
}

// Remove implements Backend. It is what an administrator runs to take
// dialgate out of a server: jumps first, so traffic falls back to the
// host's own rules, then chains, then the sets they referenced.
func (b *IPTables) Remove(ctx context.Context) error {
	b.changes.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errIPTClosed
	}
	var errs []error
	b.known = map[Family]chainPrint{}
	b.inNS(func() error { //nolint:errcheck // errs collects the failures
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
		return nil
	})
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			for _, n := range []string{SetName(code, f), SetName(code, f) + tempSuffix} {
				if err := b.destroySet(n); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for _, f := range families {
		for _, n := range []string{DropsSetName(f), SeenSetName(f), BlockSetName(f)} {
			if err := b.destroySet(n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("firewall: remove: %w", err)
	}
	b.log.Info("firewall removed")
	return nil
}
