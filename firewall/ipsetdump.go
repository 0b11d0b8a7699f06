package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// dump reads every ipset with its members in one netlink dump, the
// request `ipset list` sends, and keeps the sets whose names start with
// prefix. It parses only what dialgate needs (name, timeout support,
// each member's address, prefix length and time left), without the
// allocations, or the log lines about attributes it does not know, of
// the general-purpose parser.
func (b *ipsetBatch) dump(prefix string) (map[string]*setDump, error) {
	out := map[string]*setDump{}
	err := b.list("", func(m []byte) { parseSetMessage(m, prefix, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// list sends a list request, for one set (name) or all (""), and hands
// each answer's attributes to fn.
func (b *ipsetBatch) list(name string, fn func(attrs []byte)) error {
	b.seq++
	seq := b.seq
	req := nl.NewNetlinkRequest(nl.IPSET_CMD_LIST|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(nl.IPSET_CMD_LIST))
	req.Seq = seq
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	if name != "" {
		req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(name)))
	}
	if err := unix.Sendto(b.fd, req.Serialize(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("list sets: send: %w", err)
	}
	buf := make([]byte, 1<<20)
	for {
		n, _, err := unix.Recvfrom(b.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("list sets: receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("list sets: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a late answer to something else
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return errors.New("list sets: short error message")
				}
				errno := -int32(nl.NativeEndian().Uint32(m.Data[:4]))
				if errno == 0 {
					continue // the acknowledgement that follows a dump
				}
				var cause error = syscall.Errno(errno)
				if errno >= nl.IPSET_ERR_PRIVATE {
					cause = nl.IPSetError(uintptr(errno))
				}
				return fmt.Errorf("list sets: %w", cause)
			}
			if len(m.Data) > 4 {
				fn(m.Data[4:])
			}
		}
	}
}

// attrs walks netlink attributes: fn gets each one's type (flags
// masked off) and payload.
func attrs(b []byte, fn func(typ uint16, v []byte)) {
	ne := nl.NativeEndian()
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return
		}
		fn(ne.Uint16(b[2:4])&nl.NLA_TYPE_MASK, b[4:l])
		al := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if al > len(b) {
			return
		}
		b = b[al:]
	}
}

// parseSetMessage adds what one message of a dump says about a set to
// out. A set's header (with its timeout support) comes in its first
// message; its members may take several.
func parseSetMessage(b []byte, prefix string, out map[string]*setDump) {
	var name string
	var header, adt []byte
	attrs(b, func(typ uint16, v []byte) {
		switch typ {
		case nl.IPSET_ATTR_SETNAME:
			name = strings.TrimRight(string(v), "\x00")
		case nl.IPSET_ATTR_DATA:
			header = v
		case nl.IPSET_ATTR_ADT:
			adt = v
		}
	})
	if name == "" || !strings.HasPrefix(name, prefix) {
		return
	}
	d := out[name]
	if d == nil {
		d = &setDump{members: map[netip.Prefix]time.Duration{}}
		out[name] = d
	}
	attrs(header, func(typ uint16, v []byte) {
		if typ == nl.IPSET_ATTR_TIMEOUT {
			d.timeouts = true
		}
	})
	if isDropSet(name) || isBlockSet(name) {
		// Accounting or runtime decisions, not state: not worth parsing.
		return
	}
	attrs(adt, func(typ uint16, entry []byte) {
		if typ != nl.IPSET_ATTR_DATA {
			return
		}
		var addr netip.Addr
		var bits int = -1
		var left time.Duration
		attrs(entry, func(typ uint16, v []byte) {
			switch typ {
			case nl.IPSET_ATTR_IP:
				attrs(v, func(_ uint16, ip []byte) {
					addr, _ = netip.AddrFromSlice(ip)
				})
			case nl.IPSET_ATTR_CIDR:
				if len(v) > 0 {
					bits = int(v[0])
				}
			case nl.IPSET_ATTR_TIMEOUT:
				if len(v) >= 4 {
					left = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
				}
			}
		})
		if !addr.IsValid() {
			return
		}
		addr = addr.Unmap()
		if bits < 0 {
			bits = addr.BitLen()
		}
		d.members[netip.PrefixFrom(addr, bits)] = left
	})
}

// isDropSet reports one of the drop accounting sets.
func isDropSet(name string) bool {
	for _, f := range families {
		if name == DropsSetName(f) || name == SeenSetName(f) {
			return true
		}
	}
	return false
}

// isBlockSet reports one of the block sets.
func isBlockSet(name string) bool { return name == BlockSetName(V4) || name == BlockSetName(V6) }

// dropEntry is one member of a hash:ip,port drop accounting set.
type dropEntry struct {
	addr    netip.Addr
	proto   uint8
	port    uint16
	left    time.Duration
	packets uint64
}

// parseDropEntries reads the members of a hash:ip,port set from one
// answer to a list request.
func parseDropEntries(b []byte, fn func(dropEntry)) {
	attrs(b, func(typ uint16, adt []byte) {
		if typ != nl.IPSET_ATTR_ADT {
			return
		}
		attrs(adt, func(typ uint16, entry []byte) {
			if typ != nl.IPSET_ATTR_DATA {
				return
			}
			var e dropEntry
			attrs(entry, func(typ uint16, v []byte) {
				switch typ {
				case nl.IPSET_ATTR_IP:
					attrs(v, func(_ uint16, ip []byte) { e.addr, _ = netip.AddrFromSlice(ip) })
				case nl.IPSET_ATTR_PORT:
					if len(v) >= 2 {
						e.port = binary.BigEndian.Uint16(v)
					}
				case nl.IPSET_ATTR_PROTO:
					if len(v) >= 1 {
						e.proto = v[0]
					}
				case nl.IPSET_ATTR_TIMEOUT:
					if len(v) >= 4 {
						e.left = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
					}
				case nl.IPSET_ATTR_PACKETS:
					if len(v) >= 8 {
						e.packets = binary.BigEndian.Uint64(v)
					}
				}
			})
			if e.addr.IsValid() {
				e.addr = e.addr.Unmap()
				fn(e)
			}
		})
	})
}
