package sshpeer

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func pidPath(proc string, pid int, elem ...string) string {
	return filepath.Join(append([]string{proc, strconv.Itoa(pid)}, elem...)...)
}

type stat struct {
	comm string
	ppid int
}

// readStat reads a process's name and parent from /proc/<pid>/stat:
// "pid (comm) state ppid ...", where comm may hold spaces and parens.
func readStat(proc string, pid int) (stat, error) {
	b, err := os.ReadFile(pidPath(proc, pid, "stat"))
	if err != nil {
		return stat{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return stat{}, fmt.Errorf("pid %d: malformed stat", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return stat{}, fmt.Errorf("pid %d: malformed stat", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return stat{}, fmt.Errorf("pid %d: malformed stat: ppid %q", pid, f[1])
	}
	return stat{comm: s[open+1 : end], ppid: ppid}, nil
}

// netNS names a process's network namespace ("net:[4026531840]").
func netNS(proc string, pid int) (string, error) {
	return os.Readlink(pidPath(proc, pid, "ns", "net"))
}

// socketAddr finds the SSH session of an sshd process from the TCP
// connection it holds: the remote address with the local port.
func socketAddr(proc string, pid int) (netip.AddrPort, error) {
	dir := pidPath(proc, pid, "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return netip.AddrPort{}, err
	}
	fdOf := map[uint64]int{} // socket inode -> lowest fd holding it
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		rest, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
		if err != nil {
			continue
		}
		if old, ok := fdOf[ino]; !ok || fd < old {
			fdOf[ino] = fd
		}
	}
	if len(fdOf) == 0 {
		return netip.AddrPort{}, fmt.Errorf("sshd pid %d holds no socket", pid)
	}
	var conns []tcpEntry
	listening := map[uint16]bool{}
	for _, name := range []string{"tcp", "tcp6"} {
		es, err := readTCP(pidPath(proc, pid, "net", name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return netip.AddrPort{}, err
		}
		for _, e := range es {
			switch e.state {
			case stateListen:
				listening[e.local.Port()] = true
			case stateEstablished:
				if fd, ok := fdOf[e.inode]; ok {
					e.fd = fd
					conns = append(conns, e)
				}
			}
		}
	}
	if len(conns) == 0 {
		return netip.AddrPort{}, fmt.Errorf("sshd pid %d holds no established TCP connection", pid)
	}
	// The session came in on a listening port and was opened before any
	// forwarded connection: prefer those, then the lowest fd.
	slices.SortFunc(conns, func(a, b tcpEntry) int {
		if la, lb := listening[a.local.Port()], listening[b.local.Port()]; la != lb {
			if la {
				return -1
			}
			return 1
		}
		return a.fd - b.fd
	})
	c := conns[0]
	return netip.AddrPortFrom(c.remote.Addr().Unmap(), c.local.Port()), nil
}

// TCP states as /proc/net/tcp prints them.
const (
	stateEstablished = 0x01
	stateListen      = 0x0A
)

type tcpEntry struct {
	local, remote netip.AddrPort
	state         int
	inode         uint64
	fd            int
}

// readTCP parses /proc/<pid>/net/tcp or tcp6:
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	0: 0100007F:0016 0100007F:C822 01 00000000:00000000 00:00000000 00000000     0        0 12345 ...
//
// Lines it cannot read are skipped.
func readTCP(path string) ([]tcpEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpEntry
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		local, err1 := parseHexAddrPort(fs[1])
		remote, err2 := parseHexAddrPort(fs[2])
		state, err3 := strconv.ParseUint(fs[3], 16, 8)
		inode, err4 := strconv.ParseUint(fs[9], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		out = append(out, tcpEntry{local: local, remote: remote, state: int(state), inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddrPort reads "0100007F:0016": the address as the kernel
// prints it, 32-bit words in host byte order, and the port in hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", s, err)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q: bad address", s)
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(port)), nil
}
