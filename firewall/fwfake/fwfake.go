package fwfake

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dialgate/dialgate/firewall"
)

// Method names, as Calls counts them and FailNext and FailAlways take
// them.
const (
	MethodApply       = "Apply"
	MethodRebuild     = "Rebuild"
	MethodSyncMembers = "SyncMembers"
	MethodAddMember   = "AddMember"
	MethodDelMember   = "DelMember"
	MethodStatus      = "Status"
	MethodBlock       = "Block" // Block, Unblock and Blocked
	MethodVerify      = "Verify"
	MethodRemove      = "Remove"
	MethodDrops       = "Drops"
	MethodClose       = "Close"
)

var methods = []string{
	MethodApply, MethodRebuild, MethodSyncMembers, MethodAddMember,
	MethodDelMember, MethodStatus, MethodVerify, MethodRemove, MethodClose,
	MethodDrops,
}

var (
	// ErrInjected is what an injected failure returns when FailNext or
	// FailAlways was given a nil error.
	ErrInjected = errors.New("fwfake: injected failure")
	// ErrNoSet is returned when a member is added before any Apply or
	// after Remove, as the kernel refuses an add to a set that does not
	// exist.
	ErrNoSet = errors.New("set does not exist")
	// ErrClosed is returned by every Backend method after Close.
	ErrClosed = errors.New("fwfake: backend closed")
)

// Largest member timeout the real backends set: ipset's limit, in
// seconds.
const maxTimeout = 4294967 * time.Second

var families = []firewall.Family{firewall.V4, firewall.V6}

// Backend is an in-memory firewall.Backend. The zero value is ready to
// use, with nothing loaded; New returns the same.
type Backend struct {
	// Now is the clock members expire against; nil means time.Now. Set
	// it before the Backend is first used.
	Now func() time.Time

	mu          sync.Mutex
	loaded      bool
	closed      bool
	cfg         firewall.Config
	sets        [firewall.NumCodes]map[netip.Prefix]time.Time // prefix -> expiry, zero for permanent
	calls       map[string]int
	failNext    map[string][]error
	failAlways  map[string]error
	chainBuilds int
	tamper      tamperState
	watchers    []chan firewall.KernelChange
	drops       []firewall.Drop
	blocked     map[netip.Addr]time.Time // source -> expiry
	changes     uint64
}

var _ firewall.ChangeCounter = (*Backend)(nil)

// Changes implements firewall.ChangeCounter: the calls of the methods
// that change the "kernel", failed ones included. Tampering does not
// count.
func (b *Backend) Changes() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changes
}

var _ firewall.Backend = (*Backend)(nil)

// New returns an empty Backend on the real clock.
func New() *Backend { return &Backend{} }

// --- firewall.Backend ---

// Apply implements firewall.Backend: it stores a copy of want's Config
// and makes every set hold exactly want's members. A member already
// present whose time left is within the kernel's granularity of the
// wanted timeout keeps its expiry, as the real backends leave it alone.
func (b *Backend) Apply(ctx context.Context, want firewall.State) error {
	return b.apply(ctx, MethodApply, want, false)
}

// Rebuild implements firewall.Backend: like Apply, but every member is
// rewritten with a fresh timeout and the chain counts as rebuilt.
func (b *Backend) Rebuild(ctx context.Context, want firewall.State) error {
	return b.apply(ctx, MethodRebuild, want, true)
}

func (b *Backend) apply(ctx context.Context, method string, want firewall.State, rebuild bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, method); err != nil {
		return err
	}
	if err := want.Config.Validate(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	now := b.now()
	b.expire(now)
	var sets [firewall.NumCodes]map[netip.Prefix]time.Time
	for code := range sets {
		have := b.sets[code]
		next := map[netip.Prefix]time.Time{}
		for p, t := range mergeSet(want.Sets[code]) {
			if exp, ok := have[p]; ok && !rebuild && !timeoutDiffers(left(exp, now), t) {
				next[p] = exp
				continue
			}
			next[p] = expiry(now, t)
		}
		sets[code] = next
	}
	if rebuild || !b.loaded || configPrint(b.cfg) != configPrint(want.Config) {
		b.chainBuilds++
	}
	b.cfg = cloneConfig(want.Config)
	b.sets = sets
	b.loaded = true
	b.tamper.repair()
	return nil
}

// SyncMembers implements firewall.Backend: for each given prefix and each
// code, the prefix is put in (with want's timeout) or taken out of the
// code's set, as want says. Nothing else changes.
func (b *Backend) SyncMembers(ctx context.Context, want firewall.State, prefixes []netip.Prefix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodSyncMembers); err != nil {
		return err
	}
	now := b.now()
	b.expire(now)
	type change struct {
		code    int
		p       netip.Prefix
		timeout time.Duration
		add     bool
	}
	var changes []change
	seen := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		p = normalize(p)
		if !p.IsValid() || seen[p] {
			continue
		}
		seen[p] = true
		for code := range firewall.NumCodes {
			t, ok := want.Sets[code][p]
			if ok && !b.loaded {
				return fmt.Errorf("firewall: add %s to %s: %w", p, firewall.SetName(code, familyOf(p)), ErrNoSet)
			}
			changes = append(changes, change{code, p, t, ok})
		}
	}
	for _, c := range changes {
		if c.add {
			b.sets[c.code][c.p] = expiry(now, c.timeout)
		} else {
			delete(b.sets[c.code], c.p)
		}
	}
	return nil
}

// AddMember implements firewall.Backend: m goes into code's set of its
// family, replacing the timeout of a member already there.
func (b *Backend) AddMember(ctx context.Context, code int, m firewall.Member) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodAddMember); err != nil {
		return err
	}
	if err := checkCode(code); err != nil {
		return err
	}
	p := normalize(m.Prefix)
	if !p.IsValid() {
		return fmt.Errorf("firewall: add %s to code %d: invalid prefix", m.Prefix, code)
	}
	if !b.loaded {
		return fmt.Errorf("firewall: add %s to %s: %w", p, firewall.SetName(code, familyOf(p)), ErrNoSet)
	}
	now := b.now()
	b.expire(now)
	b.sets[code][p] = expiry(now, m.Timeout)
	return nil
}

// DelMember implements firewall.Backend: p leaves code's set; a member
// that is not there is not an error.
func (b *Backend) DelMember(ctx context.Context, code int, p netip.Prefix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodDelMember); err != nil {
		return err
	}
	if err := checkCode(code); err != nil {
		return err
	}
	delete(b.sets[code], normalize(p))
	return nil
}

// Status implements firewall.Backend. Both families report the chain;
// every code has a set per family, named firewall.SetName(code, family),
// listing the live members sorted, each with its time left. Rules is the
// size of the iptables backend's chain for the applied Config;
// Fingerprint is the fake's own digest of that Config (the real one is
// internal to package firewall), equal across Applies exactly when the
// chain would not have to change.
func (b *Backend) Status(ctx context.Context) (firewall.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodStatus); err != nil {
		return firewall.Status{}, err
	}
	now := b.now()
	b.expire(now)
	var st firewall.Status
	for _, f := range families {
		fs := firewall.FamilyStatus{Family: f.String(), ChainLoaded: b.loaded, JumpFirst: b.loaded && b.tamper.inForce()}
		if b.loaded {
			fs.Rules = ruleCount(b.cfg, f)
			fs.Fingerprint = fingerprint(b.cfg, f)
			fs.JumpPosition = len(b.tamper.ahead) + 1
			fs.Ahead = b.tamper.aheadRules()
			if b.tamper.flushed {
				fs.Rules, fs.Fingerprint = 0, ""
			}
		}
		st.Families = append(st.Families, fs)
	}
	for code := range firewall.NumCodes {
		for _, f := range families {
			ss := firewall.SetStatus{Name: firewall.SetName(code, f), Code: code, Family: f.String(), Exists: b.loaded}
			for _, m := range b.members(code, now) {
				if familyOf(m.Prefix) == f {
					ss.Entries = append(ss.Entries, firewall.SetEntry(m))
				}
			}
			st.Sets = append(st.Sets, ss)
		}
	}
	return st, nil
}

// Drops implements firewall.Backend: what SetDrops gave, while the
// firewall is loaded (the drop sets come and go with it).
func (b *Backend) Drops(ctx context.Context) ([]firewall.Drop, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodDrops); err != nil {
		return nil, err
	}
	if !b.loaded {
		return nil, nil
	}
	return slices.Clone(b.drops), nil
}

// SetDrops makes Drops report ds, as if the kernel had counted them.
// Remove forgets them.
func (b *Backend) SetDrops(ds []firewall.Drop) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drops = slices.Clone(ds)
}

// Remove implements firewall.Backend: the chain and every set go, with
// their members and the Config.
func (b *Backend) Remove(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodRemove); err != nil {
		return err
	}
	b.loaded = false
	b.cfg = firewall.Config{}
	b.sets = [firewall.NumCodes]map[netip.Prefix]time.Time{}
	b.tamper = tamperState{}
	b.drops = nil
	b.blocked = nil
	return nil
}

// Close implements firewall.Backend. As with the real backends, what is
// loaded stays (and the inspection helpers go on answering); later
// Backend calls fail with ErrClosed. Closing twice is not an error.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count(MethodClose)
	if err := b.injected(MethodClose); err != nil {
		return err
	}
	b.closed = true
	return nil
}

// begin counts a call to method and returns the error it must fail with,
// if any: an injected failure, a closed backend or a done context.
func (b *Backend) begin(ctx context.Context, method string) error {
	b.count(method)
	switch method {
	case MethodApply, MethodRebuild, MethodSyncMembers, MethodAddMember, MethodDelMember, MethodRemove:
		b.changes++
	}
	if err := b.injected(method); err != nil {
		return err
	}
	if b.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// --- inspection ---

// Loaded reports whether a chain is in place: true after a successful
// Apply or Rebuild, false before and after Remove.
func (b *Backend) Loaded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loaded
}

// State returns a copy of the applied Config with the members alive now,
// each with its time left as Timeout (zero for permanent). Codes without
// members are absent from Sets. It is the zero State when nothing is
// loaded.
func (b *Backend) State() firewall.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state(b.now())
}

func (b *Backend) state(now time.Time) firewall.State {
	if !b.loaded {
		return firewall.State{}
	}
	b.expire(now)
	st := firewall.State{Config: cloneConfig(b.cfg)}
	for code := range firewall.NumCodes {
		for _, m := range b.members(code, now) {
			if st.Sets == nil {
				st.Sets = map[int]map[netip.Prefix]time.Duration{}
			}
			if st.Sets[code] == nil {
				st.Sets[code] = map[netip.Prefix]time.Duration{}
			}
			st.Sets[code][m.Prefix] = m.Timeout
		}
	}
	return st
}

// Admits reports whether a new connection from addr to proto/port would
// pass the loaded chain with the members alive now (see
// firewall.State.Admits). With no chain loaded nothing is filtered, so
// it is true.
func (b *Backend) Admits(addr netip.Addr, proto string, port uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.loaded || !b.tamper.filtering() {
		return true
	}
	now := b.now()
	if exp, ok := b.blocked[addr.Unmap()]; ok && b.cfg.Block && now.Before(exp) && !addr.IsLoopback() {
		return false
	}
	return b.state(now).Admits(addr, proto, port)
}

var _ firewall.Blocker = (*Backend)(nil)

// Block implements firewall.Blocker.
func (b *Backend) Block(ctx context.Context, addr netip.Addr, d time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodBlock); err != nil {
		return err
	}
	if !b.loaded {
		return errors.New("fwfake: no firewall loaded")
	}
	if b.blocked == nil {
		b.blocked = map[netip.Addr]time.Time{}
	}
	b.blocked[addr.Unmap()] = b.now().Add(min(d, firewall.BlockMaxTimeout))
	return nil
}

// Unblock implements firewall.Blocker.
func (b *Backend) Unblock(ctx context.Context, addr netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodBlock); err != nil {
		return err
	}
	delete(b.blocked, addr.Unmap())
	return nil
}

// Blocked implements firewall.Blocker, sorted by address.
func (b *Backend) Blocked(ctx context.Context) ([]firewall.Blocked, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.begin(ctx, MethodBlock); err != nil {
		return nil, err
	}
	now := b.now()
	var out []firewall.Blocked
	for a, exp := range b.blocked {
		if now.Before(exp) {
			out = append(out, firewall.Blocked{Addr: a, Left: exp.Sub(now)})
		}
	}
	slices.SortFunc(out, func(x, y firewall.Blocked) int { return x.Addr.Compare(y.Addr) })
	return out, nil
}

// Members returns the members of code's set alive now, both families,
// sorted by address then prefix length, each with its time left as
// Timeout (zero for permanent). It is nil for a code out of range or an
// empty set.
func (b *Backend) Members(code int) []firewall.Member {
	b.mu.Lock()
	defer b.mu.Unlock()
	if code < 0 || code >= firewall.NumCodes {
		return nil
	}
	now := b.now()
	b.expire(now)
	return b.members(code, now)
}

func (b *Backend) members(code int, now time.Time) []firewall.Member {
	var out []firewall.Member
	for p, exp := range b.sets[code] {
		out = append(out, firewall.Member{Prefix: p, Timeout: left(exp, now)})
	}
	slices.SortFunc(out, func(a, b firewall.Member) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return out
}

// ChainBuilds counts the times the chain was built: every Rebuild, and
// every Apply that found no chain or a different Config. An Apply that
// only changes members leaves it alone.
func (b *Backend) ChainBuilds() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.chainBuilds
}

// Calls returns how many times each method was called, failed calls
// included, keyed by the Method constants; methods never called are
// absent.
func (b *Backend) Calls() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.calls)
}

// ResetCalls sets every call count back to zero.
func (b *Backend) ResetCalls() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = nil
}

func (b *Backend) count(method string) {
	if b.calls == nil {
		b.calls = map[string]int{}
	}
	b.calls[method]++
}

// --- fault injection ---

// FailNext makes the next call of method fail with err (ErrInjected when
// err is nil), changing nothing. Several FailNext for one method fail
// that many calls, in order, before any FailAlways applies. It panics on
// an unknown method name.
func (b *Backend) FailNext(method string, err error) {
	checkMethod(method)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failNext == nil {
		b.failNext = map[string][]error{}
	}
	b.failNext[method] = append(b.failNext[method], cmp.Or(err, ErrInjected))
}

// FailAlways makes every call of method fail with err (ErrInjected when
// err is nil), changing nothing, until ClearFailures. It panics on an
// unknown method name.
func (b *Backend) FailAlways(method string, err error) {
	checkMethod(method)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failAlways == nil {
		b.failAlways = map[string]error{}
	}
	b.failAlways[method] = cmp.Or(err, ErrInjected)
}

// ClearFailures drops the pending failures of the given methods, or of
// every method when none is given.
func (b *Backend) ClearFailures(method ...string) {
	for _, m := range method {
		checkMethod(m)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(method) == 0 {
		b.failNext, b.failAlways = nil, nil
		return
	}
	for _, m := range method {
		delete(b.failNext, m)
		delete(b.failAlways, m)
	}
}

// injected consumes and returns the failure injected for method, wrapped.
func (b *Backend) injected(method string) error {
	var err error
	if q := b.failNext[method]; len(q) > 0 {
		err = q[0]
		if len(q) == 1 {
			delete(b.failNext, method)
		} else {
			b.failNext[method] = q[1:]
		}
	} else if e, ok := b.failAlways[method]; ok {
		err = e
	}
	if err == nil {
		return nil
	}
	return fmt.Errorf("fwfake: %s: %w", method, err)
}

func checkMethod(method string) {
	if !slices.Contains(methods, method) {
		panic(fmt.Sprintf("fwfake: unknown method %q", method))
	}
}

// --- members and time ---

func (b *Backend) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// expire drops the members whose timeout has run out, and makes sure
// every set has a map.
func (b *Backend) expire(now time.Time) {
	for code := range b.sets {
		if b.sets[code] == nil {
			b.sets[code] = map[netip.Prefix]time.Time{}
		}
		for p, exp := range b.sets[code] {
			if !exp.IsZero() && !now.Before(exp) {
				delete(b.sets[code], p)
			}
		}
	}
}

// expiry is when a member added now with timeout runs out; zero for
// permanent. The timeout is rounded up to whole seconds and capped, as
// the real backends write it to the kernel.
func expiry(now time.Time, timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	return now.Add(min((timeout + time.Second - 1).Truncate(time.Second), maxTimeout))
}

// left is a member's time left; zero for permanent.
func left(exp, now time.Time) time.Duration {
	if exp.IsZero() {
		return 0
	}
	return exp.Sub(now)
}

// timeoutDiffers mirrors the real backends: a member is rewritten when
// it is permanent where a timeout is wanted or the reverse, or its time
// left is off by more than the kernel's one-second granularity allows.
func timeoutDiffers(have, want time.Duration) bool {
	if want < 0 {
		want = 0
	}
	if (have == 0) != (want == 0) {
		return true
	}
	d := have - want
	return d > 2*time.Second || d < -2*time.Second
}

// mergeSet normalizes a set's prefixes; two keys that normalize alike
// keep the longest life, as firewall.State.Add does.
func mergeSet(set map[netip.Prefix]time.Duration) map[netip.Prefix]time.Duration {
	var st firewall.State
	for p, t := range set {
		if t < 0 {
			t = 0 // the real backends write a negative timeout as permanent
		}
		if p = normalize(p); p.IsValid() {
			st.Add(0, p, t)
		}
	}
	return st.Sets[0]
}

// normalize is firewall's: IPv4-mapped IPv6 becomes IPv4, host bits go.
var normalize = firewall.NormalizePrefix

func familyOf(p netip.Prefix) firewall.Family {
	if p.Addr().Is4() {
		return firewall.V4
	}
	return firewall.V6
}

func checkCode(code int) error {
	if code < 0 || code >= firewall.NumCodes {
		return fmt.Errorf("firewall: permission code %d out of range 0-%d", code, firewall.NumCodes-1)
	}
	return nil
}

// --- config ---

func cloneConfig(c firewall.Config) firewall.Config {
	c.LAN = slices.Clone(c.LAN)
	c.Open = slices.Clone(c.Open)
	c.SIPDomains = slices.Clone(c.SIPDomains)
	if c.Services != nil {
		s := make(map[int][]firewall.PortRange, len(c.Services))
		for code, ports := range c.Services {
			s[code] = slices.Clone(ports)
		}
		c.Services = s
	}
	return c
}

// configPrint renders everything the rules are built from; fmt sorts map
// keys and prints nil and empty slices alike, as the rules see them.
func configPrint(c firewall.Config) string {
	return fmt.Sprintf("%+v", c)
}

func fingerprint(c firewall.Config, f firewall.Family) string {
	sum := sha256.Sum256([]byte(f.String() + "\n" + configPrint(c)))
	return hex.EncodeToString(sum[:])[:16]
}

// ruleCount is the number of rules the iptables backend puts in family
// f's chain for c (see firewall.Config's rules): loopback, established,
// the ICMP types, the LAN ranges of f, one multiport rule per protocol
// of the open ports, the secret SIP domain rules, the code-0 set, one
// rule per protocol and code, and the final drop or reject.
func ruleCount(c firewall.Config, f firewall.Family) int {
	protos := func(ports []firewall.PortRange) int {
		seen := map[string]bool{}
		for _, p := range ports {
			seen[p.Proto] = true
		}
		return len(seen)
	}
	n := 2
	if c.ICMP {
		n += map[firewall.Family]int{firewall.V4: 5, firewall.V6: 9}[f]
	}
	for _, p := range c.LAN {
		if familyOf(p) == f {
			n++
		}
	}
	n += protos(c.Open)
	if len(c.SIPDomains) > 0 {
		n += 2 * (len(c.SIPDomains) + 2)
	}
	n++
	for code := 1; code < firewall.NumCodes; code++ {
		n += protos(c.Services[code])
	}
	return n + 2 + 1 // the drop accounting rules, the final drop
}

// --- clock ---

// Clock is a manual clock for Backend.Now, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
