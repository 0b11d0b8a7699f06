package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"syscall"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
)

// bbolt trusts its file: it maps it into memory and follows the page
// numbers it finds. In a truncated file those numbers point past the end,
// and the process dies of SIGSEGV or SIGBUS, which no recover catches; a
// torn freelist makes it panic. So an existing file is first read with
// plain reads (preflight): its meta pages must be sound, and every page
// reachable from the meta bbolt would use must lie inside the file and be
// well formed. Only then does bbolt open it, and its own consistency
// check (tx.Check) runs before anything is read.
//
// The layout below is bbolt's file format version 2 (go.etcd.io/bbolt,
// internal/common: page.go, meta.go, bucket.go), in the machine's byte
// order as bbolt writes it.
const (
	boltMagic   = 0xED0CDAED
	boltVersion = 2

	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	bucketHeader   = 16 // root pgid u64, sequence u64; an inline page follows when root is 0
	metaOffset     = pageHeaderSize
	metaSumLen     = 56 // the meta fields before the checksum

	pageBranch   = 0x01
	pageLeaf     = 0x02
	pageMeta     = 0x04
	pageFreelist = 0x10
	leafBucket   = 0x01

	noFreelist = ^uint64(0)

	minPageSize = 1 << 10
	maxPageSize = 1 << 16
	// minPages: bbolt creates a file with two meta pages, a freelist page
	// and an empty root leaf, and never shrinks it.
	minPages = 4
	// maxDepth bounds the nesting of pages and buckets, far beyond any
	// real tree, so a cycle in a damaged file ends the walk.
	maxDepth = 64
)

var native = binary.NativeEndian

// boltMeta is a meta page's content.
type boltMeta struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64
	hwm      uint64 // high-water mark: pages [0, hwm) are in use or free
	txid     uint64
}

// parseMeta reads the meta in page (at least one meta's worth of bytes)
// and checks it as bbolt does: page type, magic, version, checksum.
func parseMeta(page []byte) (boltMeta, error) {
	if len(page) < metaOffset+metaSumLen+8 {
		return boltMeta{}, errors.New("short meta page")
	}
	if f := native.Uint16(page[8:]); f != pageMeta {
		return boltMeta{}, fmt.Errorf("page type %#x, want meta", f)
	}
	m := page[metaOffset:]
	if native.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("no bbolt magic number")
	}
	if v := native.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt file format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	if h.Sum64() != native.Uint64(m[metaSumLen:]) {
		return boltMeta{}, errors.New("meta checksum mismatch")
	}
	return boltMeta{
		pageSize: native.Uint32(m[8:]),
		root:     native.Uint64(m[16:]),
		freelist: native.Uint64(m[32:]),
		hwm:      native.Uint64(m[40:]),
		txid:     native.Uint64(m[48:]),
	}, nil
}

// preflight checks the existing, non-empty file at path before bbolt maps
// it. It holds a shared lock while it reads, so it never reads a file a
// writer holds; a writer that keeps it past timeout gives ErrLocked.
func preflight(path, shown string, timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open database %s: %w", shown, err)
	}
	defer f.Close()
	if err := lockShared(f, timeout); err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return newError(fmt.Sprintf("database %s is held by another process (is \"dialgate serve\" running?)", shown), ErrLocked, err)
		}
		return fmt.Errorf("lock database %s: %w", shown, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open database %s: %w", shown, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("database %s is not a regular file (%s)", shown, fi.Mode().Type())
	}
	if err := checkFile(f, fi.Size()); err != nil {
		return damaged(shown, err)
	}
	return nil
}

// lockShared takes a shared flock on f, retrying until timeout as bbolt
// does (bbolt's ErrTimeout when it gives up).
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK {
			return err
		}
		if time.Now().After(deadline) {
			return bolterrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// damaged wraps why the file at path is unusable in ErrDamaged, with the
// remedy.
func damaged(path string, why error) error {
	return newError(fmt.Sprintf("database %s is damaged: %v. "+
		"It was not changed. Restore your last backup (made by `dialgate db backup`): stop dialgate, "+
		"copy the backup over %s with mode 0600, then start dialgate; see \"Backup and restore\" in the README",
		path, why, path), ErrDamaged, why)
}

// checkFile is preflight's reading: the file's size, both meta pages,
// and the page tree and freelist of the meta bbolt would choose.
func checkFile(r io.ReaderAt, size int64) (err error) {
	// Everything below indexes slices it has bounded itself; a slip would
	// be a bug here, and must still not crash the caller.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable structure (%v)", p)
		}
	}()
	ps, err := pageSizeOf(r, size)
	if err != nil {
		return err
	}
	if size%int64(ps) != 0 {
		return fmt.Errorf("size %d bytes is not a whole number of %d-byte pages (truncated?)", size, ps)
	}
	if size < minPages*int64(ps) {
		return fmt.Errorf("size %d bytes is less than the %d pages of an empty database (truncated?)", size, minPages)
	}
	var metas [2]boltMeta
	var errs [2]error
	for i := range metas {
		buf := make([]byte, metaOffset+metaSumLen+8)
		if _, err := r.ReadAt(buf, int64(i)*int64(ps)); err != nil {
			errs[i] = err
			continue
		}
		metas[i], errs[i] = parseMeta(buf)
		if errs[i] == nil && metas[i].pageSize != uint32(ps) {
			errs[i] = fmt.Errorf("page size %d, the other meta page says %d", metas[i].pageSize, ps)
		}
	}
	// bbolt's choice (DB.meta): the valid meta with the higher txid.
	a, b := 0, 1
	if metas[1].txid > metas[0].txid {
		a, b = 1, 0
	}
	if errs[a] != nil {
		a = b
	}
	if errs[a] != nil {
		return fmt.Errorf("both meta pages are invalid (meta 0: %v; meta 1: %v)", errs[0], errs[1])
	}
	m := metas[a]
	pages := uint64(size) / uint64(ps)
	switch {
	case m.hwm > pages:
		return fmt.Errorf("meta page %d says the data fills %d pages (%d bytes), the file has %d bytes (truncated?)", a, m.hwm, m.hwm*uint64(ps), size)
	case m.root < 2 || m.root >= m.hwm:
		return fmt.Errorf("meta page %d: root page %d outside the data pages [2, %d)", a, m.root, m.hwm)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm):
		return fmt.Errorf("meta page %d: freelist page %d outside the data pages [2, %d)", a, m.freelist, m.hwm)
	}
	w := &walker{r: r, ps: ps, hwm: m.hwm, seen: make([]bool, m.hwm), free: make([]bool, m.hwm)}
	w.seen[0], w.seen[1] = true, true
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return err
		}
	}
	return w.tree(m.root, 0)
}

// pageSizeOf finds the page size as bbolt does: from meta 0, or, if meta 0
// is invalid, from a valid meta 1 at one of the possible page sizes.
func pageSizeOf(r io.ReaderAt, size int64) (int, error) {
	buf := make([]byte, metaOffset+metaSumLen+8)
	n, _ := r.ReadAt(buf, 0)
	if n < len(buf) {
		return 0, fmt.Errorf("only %d bytes, too short for a database (truncated?)", size)
	}
	m, err0 := parseMeta(buf)
	if err0 == nil {
		if !validPageSize(m.pageSize) {
			return 0, fmt.Errorf("meta page 0: page size %d is not a power of two between %d and %d", m.pageSize, minPageSize, maxPageSize)
		}
		return int(m.pageSize), nil
	}
	for ps := int64(minPageSize); ps <= maxPageSize && ps+int64(len(buf)) <= size; ps *= 2 {
		if n, _ := r.ReadAt(buf, ps); n < len(buf) {
			break
		}
		if m, err := parseMeta(buf); err == nil && int64(m.pageSize) == ps {
			return int(ps), nil
		}
	}
	return 0, fmt.Errorf("no valid meta page (meta 0: %v); not a dialgate database, or one overwritten", err0)
}

func validPageSize(ps uint32) bool {
	return ps >= minPageSize && ps <= maxPageSize && bits.OnesCount32(ps) == 1
}

// walker reads pages of one file and checks that each is where the tree
// says, lies in the file, is referenced once and is well formed.
type walker struct {
	r    io.ReaderAt
	ps   int
	hwm  uint64
	seen []bool // pages in use: metas, freelist, tree
	free []bool // pages the freelist lists
}

// page reads page id with its overflow pages and marks them seen.
func (w *walker) page(id uint64, what string) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("%s: page %d outside the data pages [2, %d)", what, id, w.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := w.r.ReadAt(hdr, int64(id)*int64(w.ps)); err != nil {
		return nil, fmt.Errorf("%s: page %d: %w", what, id, err)
	}
	if got := native.Uint64(hdr); got != id {
		return nil, fmt.Errorf("%s: page %d is not the page the tree points to (its header names page %d)", what, id, got)
	}
	over := uint64(native.Uint32(hdr[12:]))
	if over >= w.hwm-id {
		return nil, fmt.Errorf("%s: page %d runs %d pages past the data", what, id, over)
	}
	for p := id; p <= id+over; p++ {
		if w.seen[p] {
			return nil, fmt.Errorf("%s: page %d is used twice", what, p)
		}
		if w.free[p] {
			return nil, fmt.Errorf("%s: page %d is in use and listed as free", what, p)
		}
		w.seen[p] = true
	}
	buf := make([]byte, (over+1)*uint64(w.ps))
	if _, err := w.r.ReadAt(buf, int64(id)*int64(w.ps)); err != nil {
		return nil, fmt.Errorf("%s: page %d: %w", what, id, err)
	}
	return buf, nil
}

func (w *walker) freelist(id uint64) error {
	buf, err := w.page(id, "freelist")
	if err != nil {
		return err
	}
	if f := native.Uint16(buf[8:]); f != pageFreelist {
		return fmt.Errorf("freelist: page %d has type %#x", id, f)
	}
	start, count := uint64(pageHeaderSize), uint64(native.Uint16(buf[10:]))
	if count == 0xFFFF {
		count = native.Uint64(buf[pageHeaderSize:])
		start += 8
	}
	if count > (uint64(len(buf))-start)/8 {
		return fmt.Errorf("freelist: page %d claims %d free pages, more than it can hold", id, count)
	}
	for i := uint64(0); i < count; i++ {
		p := native.Uint64(buf[start+8*i:])
		switch {
		case p < 2 || p >= w.hwm:
			return fmt.Errorf("freelist: free page %d outside the data pages [2, %d)", p, w.hwm)
		case w.free[p]:
			return fmt.Errorf("freelist: page %d listed twice", p)
		case w.seen[p]:
			return fmt.Errorf("freelist: page %d is in use and listed as free", p)
		}
		w.free[p] = true
	}
	return nil
}

// tree checks the branch or leaf page id and everything below it.
func (w *walker) tree(id uint64, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("page %d: tree deeper than %d levels (a cycle?)", id, maxDepth)
	}
	buf, err := w.page(id, "tree")
	if err != nil {
		return err
	}
	switch f := native.Uint16(buf[8:]); f {
	case pageLeaf:
		return w.leaf(buf, id, depth)
	case pageBranch:
	default:
		return fmt.Errorf("page %d has type %#x where a branch or leaf page belongs", id, f)
	}
	count := int(native.Uint16(buf[10:]))
	if count == 0 {
		return fmt.Errorf("branch page %d is empty", id)
	}
	if pageHeaderSize+count*elementSize > len(buf) {
		return fmt.Errorf("branch page %d claims %d elements, more than it holds", id, count)
	}
	for i := range count {
		off := pageHeaderSize + i*elementSize
		pos, ksize := uint64(native.Uint32(buf[off:])), uint64(native.Uint32(buf[off+4:]))
		if uint64(off)+pos+ksize > uint64(len(buf)) {
			return fmt.Errorf("branch page %d: key %d lies outside the page", id, i)
		}
		if err := w.tree(native.Uint64(buf[off+8:]), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// leaf checks the elements of a leaf page (id 0: an inline bucket's page)
// and the buckets they hold.
func (w *walker) leaf(buf []byte, id uint64, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("page %d: buckets nested deeper than %d levels", id, maxDepth)
	}
	count := int(native.Uint16(buf[10:]))
	if pageHeaderSize+count*elementSize > len(buf) {
		return fmt.Errorf("leaf page %d claims %d elements, more than it holds", id, count)
	}
	for i := range count {
		off := pageHeaderSize + i*elementSize
		flags := native.Uint32(buf[off:])
		pos, ksize, vsize := uint64(native.Uint32(buf[off+4:])), uint64(native.Uint32(buf[off+8:])), uint64(native.Uint32(buf[off+12:]))
		end := uint64(off) + pos + ksize + vsize
		if end > uint64(len(buf)) {
			return fmt.Errorf("leaf page %d: element %d lies outside the page", id, i)
		}
		switch flags {
		case 0:
			continue
		case leafBucket:
		default:
			return fmt.Errorf("leaf page %d: element %d has unknown flags %#x", id, i, flags)
		}
		v := buf[end-vsize : end]
		if len(v) < bucketHeader {
			return fmt.Errorf("leaf page %d: bucket %d has a short header", id, i)
		}
		if root := native.Uint64(v); root != 0 {
			if err := w.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[bucketHeader:]
		if len(inline) < pageHeaderSize || native.Uint16(inline[8:]) != pageLeaf {
			return fmt.Errorf("leaf page %d: inline bucket %d has no leaf page", id, i)
		}
		if err := w.leaf(inline, 0, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// statDB classifies the file at path for Open: missing or empty (no
// database yet), or there.
func statDB(path string) (exists bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("open database %s: %w", path, err)
	case fi.Mode().IsRegular() && fi.Size() == 0:
		return false, nil
	}
	return true, nil
}

// noDatabase is Open's refusal of a missing, empty or uninitialised file.
func noDatabase(path, state string) error {
	return newError(fmt.Sprintf("database %s %s. Only `dialgate init` creates a database: "+
		"run it on a fresh install, or put back your last backup (made by `dialgate db backup`; "+
		"see \"Backup and restore\" in the README). Starting from an empty whitelist would lock every administrator and trunk out",
		path, state), ErrNoDatabase, nil)
}
