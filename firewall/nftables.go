package firewall

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	vnetlink "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NFTables is the Backend built on nftables: one table, inet dialgate,
// spoken to over netlink through github.com/google/nftables (no nft
// binary, no fork/exec). The table holds
//
//   - the base chain input, hooked at input with priority filter - 10 and
//     policy accept, whose rules are the iptables chain's, in order, with
//     an explicit drop (or reject) at the end;
//   - two sets per permission code and family (see nftsets.go): c<code>
//     v4h/v6h for host addresses, c<code>v4n/v6n for networks, all with
//     per-element timeouts, so the kernel expires grants by itself.
//
// Every change is one netlink transaction, which the kernel commits or
// refuses whole: a packet sees the old rules and members or the new
// ones, never a mixture and never no table.
//
// A rebuild rewrites every rule and every set element in one
// transaction but keeps the table and its sets; only a table that is
// missing or misshapen (a chain or set added, changed or removed by
// hand) is deleted and created anew, also in one transaction. The
// reason is the interval sets. Their kernel backend, the rbtree, can
// miss lookups while a transaction is in flight (a known problem,
// reworked upstream in 2026: "nft_set_rbtree: translate rbtree to array
// for binary search"); on Linux 6.18 a table or rule re-created together
// with its interval sets dropped some allowed packets at every commit,
// while refilling existing sets dropped none (TestRebuildUnderTraffic).
//
// The chain's policy is accept and the drop is a rule for a reason: when
// a transaction adds a base chain, the kernel may attach its hook before
// the transaction commits, and until then the chain has no rules and
// applies its policy. With accept that instant changes nothing (the old
// table still filters); with drop it would drop every packet.
//
// Unlike an iptables ACCEPT, which ends the INPUT chain, an nftables
// accept only ends this chain: other tables' input chains (at later
// priorities) still see the packet and may drop it. A drop here is final.
//
// The backend is bound to one network namespace for its whole life (see
// NFTablesOptions), whichever thread calls it.
type NFTables struct {
	mu   sync.Mutex
	conn *nftables.Conn
	ns   int // our own descriptor of the namespace we manage
	log  *slog.Logger
	// port is the netlink port of conn's socket: the notifications of
	// our own transactions carry it, and Watch ignores them.
	port atomic.Uint32
	// handedBack is, for a kernel that hands the rules back otherwise
	// than dialgate writes them, the digest of what it handed back after
	// dialgate wrote the rules of fingerprint fp (see expectedRender).
	// Guarded by mu.
	handedBack struct{ fp, render string }
	// changes counts the calls that may have changed the kernel.
	changes atomic.Uint64
	// dumper reads set elements (see readSet); guarded by mu.
	dumper *elementDumper
}

// Changes implements ChangeCounter.
func (b *NFTables) Changes() uint64 { return b.changes.Load() }

var _ Backend = (*NFTables)(nil)

// NFTablesOptions configures NewNFTables.
type NFTablesOptions struct {
	// NetNS is an open descriptor of the network namespace to manage (a
	// /run/netns/<name> or /proc/<pid>/ns/net file); the backend keeps
	// its own duplicate, so the caller may close it. Zero means the
	// namespace of the calling thread when NewNFTables runs.
	NetNS int
}

// Socket buffers. The kernel takes a transaction as one sendmsg, so the
// send buffer bounds its size: 32 MiB is some 500 000 members. The acks
// and rule echoes of a transaction come back together; if they overflow
// the receive buffer the kernel drops them and reports ENOBUFS for a
// transaction that in fact committed.
const (
	nftSendBuf = 32 << 20
	nftRecvBuf = 8 << 20
)

// elemChunk bounds the elements in one message: a message carries them
// in one netlink attribute, whose length is 16 bits. 512 elements of the
// largest kind (an IPv6 key with a timeout, about 40 bytes) stay well
// inside 64 KiB.
const elemChunk = 512

// NewNFTables checks that the kernel accepts the table dialgate needs
// (inet family, a base chain at input, interval and timeout sets) with a
// transaction that creates and deletes a probe table, and returns a
// backend.
func NewNFTables(log *slog.Logger, opts NFTablesOptions) (*NFTables, error) {
	if log == nil {
		log = slog.Default()
	}
	ns, err := namespaceFD(opts.NetNS)
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables: network namespace: %w", err)
	}
	b := &NFTables{ns: ns, log: log}
	if err := b.dial(); err != nil {
		unix.Close(ns)
		return nil, fmt.Errorf("firewall: nftables: netlink: %w", err)
	}
	if err := b.probe(); err != nil {
		b.Close()
		return nil, fmt.Errorf("firewall: nftables unavailable (kernel without nf_tables, or no CAP_NET_ADMIN?): %w", err)
	}
	return b, nil
}

// namespaceFD returns a descriptor of our own for the namespace fd names,
// or for the calling thread's namespace when fd is zero.
func namespaceFD(fd int) (int, error) {
	if fd != 0 {
		return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	}
	return unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// dial opens the netlink socket. It is created inside b.ns (the library
// enters the namespace on a locked thread just for the socket call), and
// kept: a netlink socket stays in the namespace it was created in.
func (b *NFTables) dial() error {
	c, err := nftables.New(nftables.WithNetNSFd(b.ns), nftables.AsLasting(), nftables.WithSockOptions(setNFTBuffers, b.notePort))
	if err != nil {
		return err
	}
	b.conn = c
	return nil
}

func (b *NFTables) notePort(c *netlink.Conn) error {
	port, err := socketPort(c)
	if err == nil {
		b.port.Store(port)
	}
	return nil // only Watch's filtering of our own changes depends on it
}

func setNFTBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, o := range []struct{ force, plain, size int }{
			{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, nftSendBuf},
			{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, nftRecvBuf},
		} {
			// FORCE passes the sysctl caps and needs CAP_NET_ADMIN, which
			// changing nftables needs anyway; the plain option is the
			// fallback for a read-only caller.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, o.size) != nil {
				serr = errors.Join(serr, unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.plain, o.size))
			}
		}
	})
	return errors.Join(err, serr)
}

// reset drops the connection after a failure and dials a new one. A
// failed transaction can leave unread replies on the socket, or a
// half-built batch and a sticky encoding error in the Conn; none of that
// must leak into the next call.
func (b *NFTables) reset() {
	b.conn.CloseLasting() //nolint:errcheck // replacing it anyway
	if err := b.dial(); err != nil {
		b.log.Error("nftables: reconnect", "err", err)
	}
}

// Close releases the netlink socket. The table stays: a server must
// remain protected after dialgate exits.
func (b *NFTables) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.CloseLasting()
	b.dumper.close()
	b.dumper = nil
	unix.Close(b.ns)
	b.conn = nil
	return err
}

var errClosed = errors.New("firewall: nftables: backend closed")

// lock takes the backend's mutex for one call, or fails when ctx is
// already done or once the backend is closed: its namespace descriptor is
// gone, and the number may name another file by now.
func (b *NFTables) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.conn == nil {
		b.mu.Unlock()
		return errClosed
	}
	return nil
}

func (b *NFTables) probe() error {
	t := &nftables.Table{Name: NFTTable + "-probe", Family: nftables.TableFamilyINet}
	tx := b.begin()
	tx.queue(func(c *nftables.Conn) { c.AddTable(t) })
	for i, k := range []setKind{hostSet, netSet} {
		s := &nftables.Set{Table: t, ID: tx.id(), Name: fmt.Sprintf("s%d", i), KeyType: nftables.TypeIP6Addr, HasTimeout: true, Interval: k == netSet}
		if err := tx.queueErr(func(c *nftables.Conn) error { return c.AddSet(s, nil) }); err != nil {
			b.abort()
			return err
		}
	}
	chain := nftChain()
	chain.Table = t
	tx.queue(func(c *nftables.Conn) {
		c.AddChain(chain)
		c.DelTable(t)
	})
	return b.commit(tx)
}

func inetTable() *nftables.Table {
	return &nftables.Table{Name: NFTTable, Family: nftables.TableFamilyINet}
}

func nftChain() *nftables.Chain {
	policy := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     NFTChain,
		Table:    inetTable(),
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(nftPriority),
		Policy:   &policy,
	}
}

// nftSetDef is one of the table's named sets.
type nftSetDef struct {
	name string
	code int
	fam  Family
	kind setKind
}

var nftSetDefs = func() []nftSetDef {
	var ds []nftSetDef
	for code := 0; code < NumCodes; code++ {
		for _, f := range families {
			for _, k := range []setKind{hostSet, netSet} {
				ds = append(ds, nftSetDef{nftSetName(code, f, k), code, f, k})
			}
		}
	}
	return ds
}()

// nftDropsSetName is family f's drop accounting set: drops-v4, drops-v6.
func nftDropsSetName(f Family) string { return "drops-" + f.String() }

// nftDropsKey is the drop set's key: address . inet_proto . inet_service.
func nftDropsKey(f Family) nftables.SetDatatype {
	addr := nftables.TypeIPAddr
	if f == V6 {
		addr = nftables.TypeIP6Addr
	}
	return nftables.MustConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService)
}

// nftDropsSet is family f's drop accounting set (see drops.go): filled
// by the rules, with a counter per element, bounded in size and age.
func nftDropsSet(f Family, id uint32) *nftables.Set {
	return &nftables.Set{Table: inetTable(), ID: id, Name: nftDropsSetName(f), KeyType: nftDropsKey(f),
		Concatenation: true, Dynamic: true, HasTimeout: true, Timeout: DropsTimeout, Size: DropsMaxElem, Counter: true,
		Comment: fmt.Sprintf("drop accounting, %s: source . protocol . port", f)}
}

// dropsShapeOK reports whether kernel set s is the drop set of family f.
// nftRuntimeSets are the sets whose members the kernel (drop accounting,
// rate limits) or the daemon's runtime decisions (blocks) fill: Verify
// checks that they exist and have their shape, never their members.
var nftRuntimeSets = []struct {
	what    string
	name    func(Family) string
	shapeOK func(Family, *nftables.Set) bool
}{
	{"drop accounting set", nftDropsSetName, dropsShapeOK},
	{"block set", nftBlockSetName, blockShapeOK},
	{"responsive sip rate set", nftRespSetName, respShapeOK},
}

// isNFTRuntimeSet reports whether name is one of nftRuntimeSets.
func isNFTRuntimeSet(name string) bool {
	for _, rs := range nftRuntimeSets {
		for _, f := range families {
			if name == rs.name(f) {
				return true
			}
		}
	}
	return false
}

func dropsShapeOK(f Family, s *nftables.Set) bool {
	return s != nil && s.KeyType.Bytes == nftDropsKey(f).Bytes && s.HasTimeout && s.Dynamic && !s.Interval && !s.IsMap && !s.Constant
}

// nftBlockSetName is family f's block set (see blocks.go): block-v4,
// block-v6.
func nftBlockSetName(f Family) string { return "block-" + f.String() }

// nftBlockRef is enough of family f's block set for element operations.
func nftBlockRef(f Family) *nftables.Set {
	key := nftables.TypeIPAddr
	if f == V6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: inetTable(), Name: nftBlockSetName(f), KeyType: key, HasTimeout: true}
}

// nftBlockSet is family f's block set as Apply creates it: addresses,
// each with its own timeout, at most BlockMaxElem.
func nftBlockSet(f Family, id uint32) *nftables.Set {
	s := nftBlockRef(f)
	s.ID, s.Size = id, BlockMaxElem
	s.Comment = fmt.Sprintf("blocked sources, %s", f)
	return s
}

// blockShapeOK reports whether kernel set s is the block set of family f.
func blockShapeOK(f Family, s *nftables.Set) bool {
	return s != nil && s.KeyType.Name == nftBlockRef(f).KeyType.Name && s.HasTimeout && !s.Interval && !s.IsMap && !s.Constant
}

func (d nftSetDef) keyType() nftables.SetDatatype {
	if d.fam == V4 {
		return nftables.TypeIPAddr
	}
	return nftables.TypeIP6Addr
}

// ref is enough of the set for element operations on the live table.
func (d nftSetDef) ref() *nftables.Set {
	return &nftables.Set{Table: inetTable(), Name: d.name, KeyType: d.keyType(), HasTimeout: true, Interval: d.kind == netSet}
}

func (d nftSetDef) define(id uint32) *nftables.Set {
	s := d.ref()
	s.ID = id
	what := "hosts"
	if d.kind == netSet {
		what = "networks"
	}
	s.Comment = fmt.Sprintf("code %d (%s), %s %s", d.code, CodeName(d.code), d.fam, what)
	return s
}

// elements returns the kernel elements for members of the set's kind.
func (d nftSetDef) elements(members []Member) []nftables.SetElement {
	var es []nftables.SetElement
	if d.kind == hostSet {
		for _, m := range members {
			es = append(es, hostElement(m.Prefix, m.Timeout))
		}
		return es
	}
	for _, m := range members {
		es = append(es, intervalElements(m.Prefix, m.Timeout)...)
	}
	return es
}

// wanted returns the members of want that belong in set d, flattened for
// a network set.
func (d nftSetDef) wanted(want State) []Member {
	var ms []Member
	for _, m := range want.members(d.code, d.fam) {
		if isHost(m.Prefix) == (d.kind == hostSet) {
			ms = append(ms, m)
		}
	}
	if d.kind == netSet {
		ms = flatten(ms)
	}
	return ms
}

// --- transactions ---

// nftTx queues one transaction on the backend's connection (the Conn
// buffers messages until Flush); commit sends it. The backend's mutex
// must be held from begin to commit or abort.
type nftTx struct {
	c     *nftables.Conn
	ids   uint32 // set IDs: unique within the transaction
	dirty bool   // something is queued
}

func (b *NFTables) begin() *nftTx { return &nftTx{c: b.conn} }

func (tx *nftTx) id() uint32 { tx.ids++; return tx.ids }

// queue runs op, which queues messages on the connection.
func (tx *nftTx) queue(op func(c *nftables.Conn)) {
	op(tx.c)
	tx.dirty = true
}

func (tx *nftTx) queueErr(op func(c *nftables.Conn) error) error {
	tx.dirty = true
	return op(tx.c)
}

// commit sends the transaction, if it holds anything.
func (b *NFTables) commit(tx *nftTx) error {
	if !tx.dirty {
		return nil
	}
	if err := b.conn.Flush(); err != nil {
		b.reset()
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%w: %w", errNoTable, err)
		}
		return err
	}
	return nil
}

// abort throws away what tx queued.
func (b *NFTables) abort() { b.reset() }

// addElements queues es for s in messages of at most elemChunk elements,
// never parting an interval's start from its end.
func (tx *nftTx) addElements(s *nftables.Set, es []nftables.SetElement) error {
	return tx.elements(s, es, tx.c.SetAddElements)
}

func (tx *nftTx) delElements(s *nftables.Set, es []nftables.SetElement) error {
	return tx.elements(s, es, tx.c.SetDeleteElements)
}

func (tx *nftTx) elements(s *nftables.Set, es []nftables.SetElement, op func(*nftables.Set, []nftables.SetElement) error) error {
	for len(es) > 0 {
		n := min(elemChunk, len(es))
		if n < len(es) && es[n].IntervalEnd {
			n++
		}
		chunk := es[:n]
		if err := tx.queueErr(func(*nftables.Conn) error { return op(s, chunk) }); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
		es = es[n:]
	}
	return nil
}

// ensureHosts makes host set s hold exactly the wanted hosts among
// touched, without reading it: each touched host is added (a no-op if
// present), deleted, and the wanted ones added again with their
// timeouts. The kernel applies the three steps in order within the
// transaction, so the result is exact whatever the set held, with no
// "not found" for a delete of something absent.
func (tx *nftTx) ensureHosts(s *nftables.Set, touched []netip.Prefix, want []Member) error {
	var es []nftables.SetElement
	for _, p := range touched {
		es = append(es, hostElement(p, 0))
	}
	if err := tx.addElements(s, es); err != nil {
		return err
	}
	if err := tx.delElements(s, es); err != nil {
		return err
	}
	es = es[:0]
	for _, m := range want {
		es = append(es, hostElement(m.Prefix, m.Timeout))
	}
	return tx.addElements(s, es)
}

// replaceTable queues the whole table: deleted and created anew in the
// same transaction, so the swap is atomic. The first add makes the
// delete valid when there is no table yet. blocked are the block sets'
// elements to carry over (see keepBlocked).
func (tx *nftTx) replaceTable(plan nftPlan, want State, blocked map[Family][]nftables.SetElement) error {
	tx.queue(func(c *nftables.Conn) {
		c.AddTable(inetTable())
		c.DelTable(inetTable())
		c.AddTable(inetTable())
	})
	for _, d := range nftSetDefs {
		s := d.define(tx.id())
		if err := tx.queueErr(func(c *nftables.Conn) error { return c.AddSet(s, nil) }); err != nil {
			return fmt.Errorf("set %s: %w", d.name, err)
		}
		if err := tx.addElements(s, d.elements(d.wanted(want))); err != nil {
			return err
		}
	}
	for _, f := range families {
		s := nftDropsSet(f, tx.id())
		if err := tx.queueErr(func(c *nftables.Conn) error { return c.AddSet(s, nil) }); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	for _, f := range families {
		s := nftBlockSet(f, tx.id())
		if err := tx.queueErr(func(c *nftables.Conn) error { return c.AddSet(s, nil) }); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
		if err := tx.addElements(s, blocked[f]); err != nil {
			return err
		}
	}
	for _, f := range families {
		s := nftRespSet(f, tx.id())
		if err := tx.queueErr(func(c *nftables.Conn) error { return c.AddSet(s, nil) }); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	tx.queue(func(c *nftables.Conn) { c.AddChain(nftChain()) })
	return tx.addRules(plan)
}

// refill queues every rule and every element of a table whose chain and
// sets are in place: the chain and the sets are flushed and filled again.
func (tx *nftTx) refill(plan nftPlan, want State) error {
	tx.queue(func(c *nftables.Conn) { c.FlushChain(nftChain()) })
	tx.flushResp()
	if err := tx.addRules(plan); err != nil {
		return err
	}
	for _, d := range nftSetDefs {
		s := d.ref()
		tx.queue(func(c *nftables.Conn) { c.FlushSet(s) })
		if err := tx.addElements(s, d.elements(d.wanted(want))); err != nil {
			return err
		}
	}
	return nil
}

// flushResp empties the responsive rate sets, whose elements carry the
// limit of the rules that made them: new rules start afresh.
func (tx *nftTx) flushResp() {
	for _, f := range families {
		s := nftRespSet(f, 0)
		tx.queue(func(c *nftables.Conn) { c.FlushSet(s) })
	}
}

// addRules queues the chain's rules, each with the anonymous sets it
// looks up; the first carries the fingerprint as its comment.
func (tx *nftTx) addRules(plan nftPlan) error {
	chain := nftChain()
	for i, r := range plan.rules {
		exprs := r.exprs
		if len(r.anon) > 0 {
			ids := make([]uint32, len(r.anon))
			for j, a := range r.anon {
				// "%d" in the name has the kernel pick a free one; rules
				// find the set by ID within the transaction.
				s := &nftables.Set{Table: chain.Table, ID: tx.id(), Name: "__set%d",
					Anonymous: true, Constant: true, KeyType: a.key}
				if err := tx.queueErr(func(c *nftables.Conn) error { return c.AddSet(s, a.elems) }); err != nil {
					return fmt.Errorf("rule %d: %w", i+1, err)
				}
				ids[j] = s.ID
			}
			exprs = slices.Clone(exprs)
			for k, e := range exprs {
				if lk, ok := e.(*expr.Lookup); ok && lk.SetName == "" {
					anon := *lk
					anon.SetID, anon.SetName = ids[lk.SetID-1], "__set%d"
					exprs[k] = &anon
				}
			}
		}
		nr := &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: exprs}
		if i == 0 {
			nr.UserData = userdata.AppendString(nil, userdata.TypeComment, commentPrefix+plan.fp)
		}
		tx.queue(func(c *nftables.Conn) { c.AddRule(nr) })
	}
	return nil
}

// --- reading the kernel ---

// nftState is what the kernel holds of the table.
type nftState struct {
	table bool
	chain *nftables.Chain // nil: absent
	// chains and sets count everything in the table, ours or not.
	chains int
	rules  int
	fp     string
	sets   map[string]*nftables.Set
	hosts  map[string]map[netip.Prefix]time.Duration // set -> host -> time left
	nets   map[string][]kernelRange
	// render is a digest of the chain's rules (see renderRules).
	render string
	// Beside the table: a probe table left behind, the FreePBX
	// Firewall's table or iptables-nft chains, and other tables' input
	// chains that run before ours.
	probe bool
	fpbx  bool
	ahead []AheadRule
}

// read reads the table and, for the sets in which (all when nil), their
// elements.
func (b *NFTables) read(which func(nftSetDef) bool) (*nftState, error) {
	st := &nftState{sets: map[string]*nftables.Set{}, hosts: map[string]map[netip.Prefix]time.Duration{}, nets: map[string][]kernelRange{}}
	tables, err := b.conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Family != nftables.TableFamilyINet {
			continue
		}
		switch t.Name {
		case NFTTable:
			st.table = true
		case nftProbeTable:
			st.probe = true
		case fpbxNFTTable:
			st.fpbx = true
		}
	}
	chains, err := b.conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table == nil {
			continue
		}
		if c.Table.Family == nftables.TableFamilyINet && c.Table.Name == NFTTable {
			st.chains++
			if c.Name == NFTChain {
				st.chain = c
			}
			continue
		}
		st.noteForeign(c)
	}
	if !st.table {
		return st, nil
	}
	t := inetTable()
	if st.chain != nil {
		rules, err := b.conn.GetRules(t, st.chain)
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
		st.rules = len(rules)
		if len(rules) > 0 {
			if c, ok := userdata.GetString(rules[0].UserData, userdata.TypeComment); ok {
				st.fp, _ = strings.CutPrefix(c, commentPrefix)
			}
		}
		st.render = renderRules(rules)
	}
	sets, err := b.conn.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if !s.Anonymous {
			st.sets[s.Name] = s
		}
	}
	for _, d := range nftSetDefs {
		if _, ok := st.sets[d.name]; !ok || (which != nil && !which(d)) {
			continue
		}
		if err := b.readSet(st, d); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// nftProbeTable is the table NewNFTables creates and deletes in one
// transaction to probe the kernel.
const nftProbeTable = NFTTable + "-probe"

// fpbxNFTTable is the FreePBX Firewall module's nftables table (inet).
const fpbxNFTTable = "fpbx"

// noteForeign records what another table's chain means to dialgate: a
// base chain at input with an earlier priority sees packets first (it
// cannot let one past dialgate: an nftables accept is not final), and
// iptables-nft chains named fpbx* are the FreePBX Firewall module's.
func (st *nftState) noteForeign(c *nftables.Chain) {
	fam := c.Table.Family
	if (fam == nftables.TableFamilyIPv4 || fam == nftables.TableFamilyIPv6) && strings.HasPrefix(c.Name, "fpbx") {
		st.fpbx = true
	}
	if fam != nftables.TableFamilyINet && fam != nftables.TableFamilyIPv4 && fam != nftables.TableFamilyIPv6 {
		return
	}
	if c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookInput || c.Priority == nil || *c.Priority > nftPriority {
		return
	}
	st.ahead = append(st.ahead, AheadRule{
		Rule:     fmt.Sprintf("table %s %s chain %s (hook input priority %d)", familyName(fam), c.Table.Name, c.Name, *c.Priority),
		Harmless: true,
		Why:      "an nftables accept only ends its own chain: dialgate's chain still sees every packet, and its drop is final",
	})
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return fmt.Sprintf("family %d", f)
}

// renderRules digests the rules as the kernel holds them: expressions
// and comments, in order. Any edit, even one that keeps the rule count
// and the first rule's comment, changes it; rewriting the same rules
// (another dialgate process's Apply) does not: handles and the names the
// kernel gives anonymous sets are left out.
func renderRules(rules []*nftables.Rule) string {
	h := sha256.New()
	for _, r := range rules {
		fmt.Fprintf(h, "%x", r.UserData)
		for _, e := range r.Exprs {
			if lk, ok := e.(*expr.Lookup); ok && (lk.SetName == "" || strings.HasPrefix(lk.SetName, "__set")) {
				anon := *lk
				anon.SetName, anon.SetID = "", 0
				e = &anon
			}
			b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
			if err != nil {
				fmt.Fprintf(h, " %T:%v", e, err)
				continue
			}
			fmt.Fprintf(h, " %x", b)
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// expectedRender is what renderRules of the kernel's rules must be for
// plan: renderPlan, unless the kernel handed those rules back otherwise.
func (b *NFTables) expectedRender(plan nftPlan) string {
	if b.handedBack.fp == plan.fp {
		return b.handedBack.render
	}
	return renderPlan(plan)
}

// renderPlan is renderRules of the rules plan makes, as the kernel gives
// them back: what Apply and Verify compare the kernel's rules with.
func renderPlan(plan nftPlan) string {
	rs := make([]*nftables.Rule, len(plan.rules))
	for i, r := range plan.rules {
		rs[i] = &nftables.Rule{Exprs: r.exprs}
		if i == 0 {
			rs[i].UserData = userdata.AppendString(nil, userdata.TypeComment, commentPrefix+plan.fp)
		}
	}
	return renderRules(rs)
}

// hooked reports the chain as dialgate creates it: a filter chain at
// input, priority filter - 10, policy accept.
func (st *nftState) hooked() bool {
	c := st.chain
	return c != nil && c.Type == nftables.ChainTypeFilter &&
		c.Hooknum != nil && *c.Hooknum == *nftables.ChainHookInput &&
		c.Priority != nil && *c.Priority == nftPriority &&
		c.Policy != nil && *c.Policy == nftables.ChainPolicyAccept
}

// shapeOK reports whether the table has exactly dialgate's chain and
// sets, so that Apply can patch it instead of replacing it.
func (st *nftState) shapeOK() bool {
	if !st.hooked() || st.chains != 1 || len(st.sets) != len(nftSetDefs)+len(nftRuntimeSets)*len(families) {
		return false
	}
	for _, rs := range nftRuntimeSets {
		for _, f := range families {
			if !rs.shapeOK(f, st.sets[rs.name(f)]) {
				return false
			}
		}
	}
	for _, d := range nftSetDefs {
		if s, ok := st.sets[d.name]; !ok || !d.shapeOK(s) {
			return false
		}
	}
	return true
}

// shapeOK reports whether kernel set s is the kind of set d is.
func (d nftSetDef) shapeOK(s *nftables.Set) bool {
	return s.KeyType.Name == d.keyType().Name && s.HasTimeout && s.Interval == (d.kind == netSet) && !s.IsMap && !s.Constant
}

// --- Backend ---

// Apply implements Backend. When the table has the right shape, only
// what differs changes: set elements one by one and the chain's rules
// if their fingerprint differs, all in one transaction; when nothing
// differs nothing is sent. Otherwise the table is replaced.
func (b *NFTables) Apply(ctx context.Context, want State) error {
	return b.apply(ctx, want, false)
}

// Rebuild implements Backend: every rule and every set element is
// rewritten in one transaction, or the table is replaced when it does not
// have the right shape.
func (b *NFTables) Rebuild(ctx context.Context, want State) error {
	return b.apply(ctx, want, true)
}

func (b *NFTables) apply(ctx context.Context, want State, rebuild bool) error {
	b.changes.Add(1)
	if err := want.Config.Validate(); err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	plan, err := nftPlanFor(want.Config)
	if err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	start := time.Now()
	// A rebuild rewrites the sets whatever they hold: no need to read
	// their elements.
	st, err := b.read(func(nftSetDef) bool { return !rebuild })
	if err != nil {
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	tx := b.begin()
	replace := !st.shapeOK()
	var added, removed int
	rulesChanged := replace || rebuild
	switch {
	case replace:
		var blocked map[Family][]nftables.SetElement
		if blocked, err = b.keepBlocked(st); err == nil {
			tx = b.begin() // keepBlocked may have reconnected
			err = tx.replaceTable(plan, want, blocked)
		}
	case rebuild:
		err = tx.refill(plan, want)
	default:
		for _, d := range nftSetDefs {
			a, r, serr := tx.syncSet(d, st, d.wanted(want))
			added, removed, err = added+a, removed+r, serr
			if err != nil {
				break
			}
		}
		if err == nil && (st.fp != plan.fp || st.rules != len(plan.rules) || st.render != b.expectedRender(plan)) {
			rulesChanged = true
			tx.queue(func(c *nftables.Conn) { c.FlushChain(nftChain()) })
			tx.flushResp()
			err = tx.addRules(plan)
		}
	}
	if err == nil && st.probe {
		// A probe table a killed NewNFTables left behind (it never
		// should: the probe is one transaction).
		probe := &nftables.Table{Name: nftProbeTable, Family: nftables.TableFamilyINet}
		tx.queue(func(c *nftables.Conn) { c.DelTable(probe) })
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		b.abort()
		return fmt.Errorf("firewall: nftables: %w", err)
	}
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: apply: %w", err)
	}
	if rulesChanged {
		// Check that the kernel hands the rules back as they were
		// written; if it does not, compare with what it hands back.
		rules, err := b.conn.GetRules(inetTable(), nftChain())
		if err != nil {
			return fmt.Errorf("firewall: nftables: read back the rules: %w", err)
		}
		if got := renderRules(rules); got != renderPlan(plan) && b.handedBack.fp != plan.fp {
			b.handedBack.fp, b.handedBack.render = plan.fp, got
			b.log.Warn("nftables hands dialgate's rules back otherwise than they were written; "+
				"Verify compares with what it handed back", "fingerprint", plan.fp)
		}
	}
	b.log.Info("firewall applied", "backend", "nftables", "rebuild", rebuild, "table_replaced", replace,
		"rules_replaced", rulesChanged, "added", added, "removed", removed, "duration", time.Since(start))
	return nil
}

// keepBlocked reads the block sets' elements of a table about to be
// replaced, to carry them over with their time left: blocks survive
// Apply and Rebuild. A set of another shape is not carried over.
func (b *NFTables) keepBlocked(st *nftState) (map[Family][]nftables.SetElement, error) {
	out := map[Family][]nftables.SetElement{}
	for _, f := range families {
		s, ok := st.sets[nftBlockSetName(f)]
		if !ok || !blockShapeOK(f, s) {
			continue
		}
		es, err := b.conn.GetSetElements(nftBlockRef(f))
		if err != nil {
			b.reset()
			return nil, fmt.Errorf("list set %s: %w", nftBlockSetName(f), err)
		}
		for _, e := range es {
			if len(e.Key) != keyLen(f) || (e.Timeout > 0 && e.Expires <= 0) {
				continue
			}
			out[f] = append(out[f], nftables.SetElement{Key: e.Key, Timeout: elementTimeout(cmp.Or(e.Expires, e.Timeout))})
		}
	}
	return out, nil
}

// keyLen is the length of family f's addresses.
func keyLen(f Family) int {
	if f == V4 {
		return 4
	}
	return 16
}

// syncSet queues the element changes that make set d hold want (already
// flattened for a network set). Deletions go first: a network set
// refuses an element that overlaps one still there.
func (tx *nftTx) syncSet(d nftSetDef, st *nftState, want []Member) (added, removed int, err error) {
	var dels, adds []nftables.SetElement
	if d.kind == hostSet {
		have := st.hosts[d.name]
		wanted := make(map[netip.Prefix]bool, len(want))
		for _, m := range want {
			wanted[m.Prefix] = true
			cur, ok := have[m.Prefix]
			if ok && !timeoutDiffers(cur, m.Timeout) {
				continue
			}
			if ok {
				dels = append(dels, hostElement(m.Prefix, 0))
			}
			adds = append(adds, hostElement(m.Prefix, m.Timeout))
			added++
		}
		for p := range have {
			if !wanted[p] {
				dels = append(dels, hostElement(p, 0))
				removed++
			}
		}
	} else {
		gone, missing := diffRanges(st.nets[d.name], want)
		for _, k := range gone {
			dels = append(dels, k.elements()...)
		}
		adds = d.elements(missing)
		added, removed = len(missing), len(gone)
	}
	if err := tx.delElements(d.ref(), dels); err != nil {
		return 0, 0, err
	}
	return added, removed, tx.addElements(d.ref(), adds)
}

// diffRanges compares what a network set holds with the flattened
// members it should hold: the kernel ranges to delete and the members to
// add. A member whose timeout changed is both.
func diffRanges(have []kernelRange, want []Member) (gone []kernelRange, missing []Member) {
	byPrefix := make(map[netip.Prefix]kernelRange, len(have))
	for _, k := range have {
		if k.prefix.IsValid() {
			byPrefix[k.prefix] = k
		} else {
			gone = append(gone, k) // not a prefix: written by hand
		}
	}
	for _, m := range want {
		k, ok := byPrefix[m.Prefix]
		if ok && !timeoutDiffers(k.timeout, m.Timeout) {
			delete(byPrefix, m.Prefix)
			continue
		}
		missing = append(missing, m)
	}
	for _, k := range byPrefix {
		gone = append(gone, k)
	}
	return gone, missing
}

// SyncMembers implements Backend. Named host addresses are set in every
// code's host set without reading them (see ensureHosts). For a named
// network, the network sets are read, and the part of each that the
// change can affect is recomputed from want: the largest of the network
// itself, a kernel element containing it, or a member of want containing
// it. Nothing outside those regions is touched.
func (b *NFTables) SyncMembers(ctx context.Context, want State, prefixes []netip.Prefix) error {
	b.changes.Add(1)
	hosts := map[Family][]netip.Prefix{}
	nets := map[Family][]netip.Prefix{}
	seen := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		p = normalize(p)
		if !p.IsValid() || seen[p] {
			continue
		}
		seen[p] = true
		if isHost(p) {
			hosts[familyOf(p)] = append(hosts[familyOf(p)], p)
		} else {
			nets[familyOf(p)] = append(nets[familyOf(p)], p)
		}
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	var st *nftState
	if len(nets) > 0 {
		var err error
		st, err = b.read(func(d nftSetDef) bool { return d.kind == netSet && len(nets[d.fam]) > 0 })
		if err != nil {
			return fmt.Errorf("firewall: nftables: %w", err)
		}
	}
	tx := b.begin()
	err := func() error {
		for _, d := range nftSetDefs {
			if d.kind == hostSet && len(hosts[d.fam]) > 0 {
				var keep []Member
				for _, p := range hosts[d.fam] {
					if t, ok := want.Sets[d.code][p]; ok {
						keep = append(keep, Member{Prefix: p, Timeout: t})
					}
				}
				if err := tx.ensureHosts(d.ref(), hosts[d.fam], keep); err != nil {
					return err
				}
			}
			if d.kind == netSet && len(nets[d.fam]) > 0 {
				var members []Member
				for _, m := range want.members(d.code, d.fam) {
					if !isHost(m.Prefix) {
						members = append(members, m)
					}
				}
				gone, missing, err := syncRegions(d.name, st.nets[d.name], members, nets[d.fam])
				if err != nil {
					return err
				}
				if err := tx.changeRanges(d, gone, missing); err != nil {
					return err
				}
			}
		}
		return ctx.Err()
	}()
	if err != nil {
		b.abort()
		return fmt.Errorf("firewall: nftables: sync: %w", err)
	}
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: sync: %w", err)
	}
	return nil
}

func (tx *nftTx) changeRanges(d nftSetDef, gone []kernelRange, missing []Member) error {
	var dels []nftables.SetElement
	for _, k := range gone {
		dels = append(dels, k.elements()...)
	}
	if err := tx.delElements(d.ref(), dels); err != nil {
		return err
	}
	return tx.addElements(d.ref(), d.elements(missing))
}

// errHandEdited: a network set holds a range that is not a prefix, which
// dialgate never writes. An Apply replaces it.
var errHandEdited = errors.New("holds a range that is not a prefix (edited by hand?); an apply will repair it")

func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Overlaps(inner)
}

// syncRegions works out the changes SyncMembers makes to one network
// set: members is everything want has in it (unflattened), named the
// networks whose membership changed.
//
// The region of a named network is the largest prefix among it, a
// kernel element containing it and a member containing it. No member and
// no kernel element sticks out of a region, so flattening the members
// inside it gives exactly the elements the whole set would have there,
// and the kernel elements inside it are exactly the ones to compare.
func syncRegions(name string, have []kernelRange, members []Member, named []netip.Prefix) (gone []kernelRange, missing []Member, err error) {
	for _, k := range have {
		if !k.prefix.IsValid() {
			return nil, nil, fmt.Errorf("set %s %w", name, errHandEdited)
		}
	}
	var regions []netip.Prefix
	for _, p := range named {
		r := p
		for _, k := range have {
			if contains(k.prefix, r) {
				r = k.prefix
			}
		}
		for _, m := range members {
			if contains(m.Prefix, r) {
				r = m.Prefix
			}
		}
		regions = append(regions, r)
	}
	// Regions nest or are disjoint; keep the outermost.
	slices.SortFunc(regions, comparePrefix)
	var outer []netip.Prefix
	for _, r := range regions {
		if n := len(outer); n > 0 && contains(outer[n-1], r) {
			continue
		}
		outer = append(outer, r)
	}
	for _, r := range outer {
		var inside []Member
		for _, m := range members {
			if contains(r, m.Prefix) {
				inside = append(inside, m)
			}
		}
		var here []kernelRange
		for _, k := range have {
			if contains(r, k.prefix) {
				here = append(here, k)
			}
		}
		g, mi := diffRanges(here, flatten(inside))
		gone, missing = append(gone, g...), append(missing, mi...)
	}
	return gone, missing, nil
}

// AddMember implements Backend. A host address is replaced in its set
// without reading it. A network is merged with the kernel elements it
// overlaps, as if they were members: its part of the set is flattened
// again, so it extends whatever it covers for longer and leaves alone
// what outlives it.
func (b *NFTables) AddMember(ctx context.Context, code int, m Member) error {
	b.changes.Add(1)
	if err := checkCode(code); err != nil {
		return err
	}
	p := normalize(m.Prefix)
	m.Prefix = p
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	tx := b.begin()
	var err error
	if isHost(p) {
		d := nftSetDef{nftSetName(code, familyOf(p), hostSet), code, familyOf(p), hostSet}
		err = tx.ensureHosts(d.ref(), []netip.Prefix{p}, []Member{m})
	} else {
		err = b.addNetwork(tx, code, m)
	}
	if err != nil {
		b.abort()
		return fmt.Errorf("firewall: nftables: add %s to code %d: %w", p, code, err)
	}
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: add %s to code %d: %w", p, code, err)
	}
	return nil
}

func (b *NFTables) addNetwork(tx *nftTx, code int, m Member) error {
	d := nftSetDef{nftSetName(code, familyOf(m.Prefix), netSet), code, familyOf(m.Prefix), netSet}
	have, ok, err := b.readNets(d)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("set %s: %w", d.name, errNoTable)
	}
	r := m.Prefix
	for _, k := range have {
		if contains(k.prefix, r) {
			r = k.prefix
		}
	}
	var here []kernelRange
	members := []Member{m}
	for _, k := range have {
		if contains(r, k.prefix) {
			here = append(here, k)
			if k.prefix != m.Prefix { // m replaces its own element, timeout and all
				members = append(members, Member{Prefix: k.prefix, Timeout: k.timeout})
			}
		}
	}
	gone, missing := diffRanges(here, flatten(members))
	return tx.changeRanges(d, gone, missing)
}

// readNets reads network set d, or reports that it does not exist. A set
// edited by hand is refused.
func (b *NFTables) readNets(d nftSetDef) (have []kernelRange, ok bool, err error) {
	st, err := b.read(func(x nftSetDef) bool { return x.name == d.name })
	if err != nil {
		return nil, false, err
	}
	if _, ok := st.sets[d.name]; !ok {
		return nil, false, nil
	}
	for _, k := range st.nets[d.name] {
		if !k.prefix.IsValid() {
			return nil, false, fmt.Errorf("set %s %w", d.name, errHandEdited)
		}
	}
	return st.nets[d.name], true, nil
}

// errNoTable explains a missing table or set.
var errNoTable = errors.New("not in the kernel: no firewall loaded (apply first)")

// DelMember implements Backend; a missing set holds nothing, so that is
// no error either. A network takes out every kernel element inside it.
// A network set does not keep what flattening shadowed: a shorter-lived
// network inside the deleted one comes back with the next SyncMembers or
// Apply of it, which have the whole state.
func (b *NFTables) DelMember(ctx context.Context, code int, p netip.Prefix) error {
	b.changes.Add(1)
	if err := checkCode(code); err != nil {
		return err
	}
	p = normalize(p)
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	tx := b.begin()
	err := func() error {
		if isHost(p) {
			d := nftSetDef{nftSetName(code, familyOf(p), hostSet), code, familyOf(p), hostSet}
			return tx.ensureHosts(d.ref(), []netip.Prefix{p}, nil)
		}
		d := nftSetDef{nftSetName(code, familyOf(p), netSet), code, familyOf(p), netSet}
		have, _, err := b.readNets(d)
		if err != nil {
			return err
		}
		var gone []kernelRange
		for _, k := range have {
			if contains(p, k.prefix) {
				gone = append(gone, k)
			}
		}
		return tx.changeRanges(d, gone, nil)
	}()
	if err != nil {
		b.abort()
		return fmt.Errorf("firewall: nftables: remove %s from code %d: %w", p, code, err)
	}
	if err := b.commit(tx); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // no set, so p is not in it
		}
		return fmt.Errorf("firewall: nftables: remove %s from code %d: %w", p, code, err)
	}
	return nil
}

// Status implements Backend. The chain serves both families, so both
// report it; JumpFirst means hooked at input as dialgate hooks it.
// Network sets report the flattened elements, which are the members
// unless members overlap.
func (b *NFTables) Status(ctx context.Context) (Status, error) {
	if err := b.lock(ctx); err != nil {
		return Status{}, err
	}
	defer b.mu.Unlock()
	st, err := b.read(nil)
	if err != nil {
		return Status{}, fmt.Errorf("firewall: nftables: %w", err)
	}
	var s Status
	for _, f := range families {
		s.Families = append(s.Families, FamilyStatus{
			Family: f.String(), ChainLoaded: st.chain != nil, JumpFirst: st.hooked(), Rules: st.rules, Fingerprint: st.fp,
			Ahead: st.ahead,
		})
	}
	if st.fpbx {
		s.Coexistence = append(s.Coexistence, noteFreePBXNFT)
	}
	if b.iptablesLoaded() {
		s.Coexistence = append(s.Coexistence, noteOtherIPT)
	}
	for _, d := range nftSetDefs {
		ss := SetStatus{Name: d.name, Code: d.code, Family: d.fam.String()}
		_, ss.Exists = st.sets[d.name]
		for p, t := range st.hosts[d.name] {
			ss.Entries = append(ss.Entries, SetEntry{Prefix: p, Timeout: t})
		}
		for _, k := range st.nets[d.name] {
			for _, p := range k.prefixes() {
				ss.Entries = append(ss.Entries, SetEntry{Prefix: p, Timeout: k.timeout})
			}
		}
		sortEntries(ss.Entries)
		s.Sets = append(s.Sets, ss)
	}
	return s, nil
}

// Drops implements Backend: one read of each drop set's elements.
func (b *NFTables) Drops(ctx context.Context) ([]Drop, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	now := time.Now()
	var out []Drop
	for _, f := range families {
		n := 4
		if f == V6 {
			n = 16
		}
		es, err := b.conn.GetSetElements(&nftables.Set{Table: inetTable(), Name: nftDropsSetName(f), KeyType: nftDropsKey(f)})
		if err != nil {
			b.reset()
			// The library does not always wrap the errno: ask whether
			// the set is there.
			if errors.Is(err, unix.ENOENT) || !b.hasDropSet(f) {
				continue
			}
			return nil, fmt.Errorf("firewall: nftables: list set %s: %w", nftDropsSetName(f), err)
		}
		for _, e := range es {
			if len(e.Key) < n+8 {
				continue
			}
			addr, _ := netip.AddrFromSlice(e.Key[:n])
			d := Drop{Addr: addr, Proto: protoName(e.Key[n]), Port: binary.BigEndian.Uint16(e.Key[n+4 : n+6])}
			if e.Counter != nil {
				d.Packets = e.Counter.Packets
			}
			life := cmp.Or(e.Timeout, DropsTimeout)
			d.LastSeen = lastSeen(now, e.Expires-(life-DropsTimeout))
			out = append(out, d)
		}
	}
	return out, ctx.Err()
}

// hasDropSet reports whether family f's drop set exists.
func (b *NFTables) hasDropSet(f Family) bool { return b.hasSet(nftDropsSetName(f)) }

// hasSet reports whether the table has the named set.
func (b *NFTables) hasSet(name string) bool {
	sets, err := b.conn.GetSets(inetTable())
	return err == nil && slices.ContainsFunc(sets, func(s *nftables.Set) bool { return s.Name == name })
}

// Remove implements Backend: the table goes, with its chain and sets, in
// one transaction (the add first makes a missing table no error).
func (b *NFTables) Remove(ctx context.Context) error {
	b.changes.Add(1)
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	tx := b.begin()
	tx.queue(func(c *nftables.Conn) {
		c.AddTable(inetTable())
		c.DelTable(inetTable())
	})
	if err := b.commit(tx); err != nil {
		return fmt.Errorf("firewall: nftables: remove: %w", err)
	}
	b.log.Info("firewall removed", "backend", "nftables")
	return nil
}

// iptablesLoaded reports whether the iptables backend's sets exist in
// the backend's namespace.
func (b *NFTables) iptablesLoaded() bool {
	h, err := vnetlink.NewHandleAt(netns.NsHandle(b.ns), unix.NETLINK_NETFILTER)
	if err != nil {
		return false
	}
	defer h.Close()
	_, err = h.IpsetList(SetName(CodeAll, V4))
	return err == nil
}

// Verify implements Backend: one read of the table, its rules and every
// set's elements.
func (b *NFTables) Verify(ctx context.Context, want State) (Drift, error) {
	var d Drift
	if err := want.Config.Validate(); err != nil {
		return d, fmt.Errorf("firewall: %w", err)
	}
	plan, err := nftPlanFor(want.Config)
	if err != nil {
		return d, fmt.Errorf("firewall: nftables: %w", err)
	}
	if err := b.lock(ctx); err != nil {
		return d, err
	}
	defer b.mu.Unlock()
	st, err := b.read(nil)
	if err != nil {
		return d, fmt.Errorf("firewall: nftables: %w", err)
	}
	if st.probe {
		d.add(DriftLeftover, 0, "table inet %s left by an interrupted start", nftProbeTable)
	}
	if !st.table {
		d.add(DriftChain, 0, "table inet %s is missing: nothing dialgate says is enforced", NFTTable)
		return d, nil
	}
	switch {
	case st.chain == nil:
		d.add(DriftChain, 0, "chain %s is missing from table inet %s", NFTChain, NFTTable)
	case !st.hooked():
		d.add(DriftJump, 0, "chain %s is not hooked as dialgate hooks it (filter, hook input, priority %d, policy accept)", NFTChain, nftPriority)
	}
	if st.chains > 1 {
		d.add(DriftChain, 0, "table inet %s holds %d chains, dialgate makes one", NFTTable, st.chains)
	}
	if st.chain != nil {
		switch {
		case st.rules != len(plan.rules):
			d.add(DriftChain, 0, "chain %s has %d rules, the configuration makes %d", NFTChain, st.rules, len(plan.rules))
		case st.fp != plan.fp:
			d.add(DriftChain, 0, "chain %s holds other rules than the configuration's (fingerprint %q, want %q)", NFTChain, st.fp, plan.fp)
		case st.render != b.expectedRender(plan):
			d.add(DriftChain, 0, "a rule of chain %s was changed in place", NFTChain)
		}
	}
	for _, rs := range nftRuntimeSets {
		for _, f := range families {
			switch s, ok := st.sets[rs.name(f)]; {
			case !ok:
				d.add(DriftSet, f, "%s %s is missing", rs.what, rs.name(f))
			case !rs.shapeOK(f, s):
				d.add(DriftSet, f, "%s %s is not the kind of set dialgate makes", rs.what, rs.name(f))
			}
		}
	}
	for name := range st.sets {
		if isNFTRuntimeSet(name) {
			continue
		}
		if !slices.ContainsFunc(nftSetDefs, func(x nftSetDef) bool { return x.name == name }) {
			d.add(DriftSet, 0, "table inet %s holds a set dialgate does not make: %s", NFTTable, name)
		}
	}
	for _, def := range nftSetDefs {
		s, ok := st.sets[def.name]
		switch {
		case !ok:
			d.add(DriftSet, def.fam, "set %s is missing", def.name)
			continue
		case !def.shapeOK(s):
			d.add(DriftSet, def.fam, "set %s is not the kind of set dialgate makes", def.name)
			continue
		}
		wantM, keep, have := want.Sets[def.code], func(p netip.Prefix) bool { return def.fam.has(p) && isHost(p) }, st.hosts[def.name]
		if def.kind == netSet {
			var nets []Member
			for p, t := range want.Sets[def.code] {
				if def.fam.has(p) && !isHost(p) {
					nets = append(nets, Member{Prefix: p, Timeout: t})
				}
			}
			wantM, keep = memberMap(flatten(nets)), nil
			have = map[netip.Prefix]time.Duration{}
			for _, k := range st.nets[def.name] {
				if !k.prefix.IsValid() {
					d.add(DriftMembers, def.fam, "set %s holds a range that is not a network, written by hand: %s-%s", def.name, k.start, k.end)
					continue
				}
				have[k.prefix] = k.timeout
			}
		}
		if diff := MemberDiff(wantM, keep, have); diff != "" {
			d.add(DriftMembers, def.fam, "set %s: %s", def.name, diff)
		}
	}
	return d, ctx.Err()
}
