package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elementDumper reads a set's elements with a netlink dump of its own,
// parsing only the key, the interval-end flag and the times (what
// dialgate needs), element by element: a Verify reads 10 000 elements
// every second, and the general-purpose parser's allocations cost more
// than the kernel's dump.
type elementDumper struct {
	c *netlink.Conn
}

func dialDumper(ns int) (*elementDumper, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(1 << 20)
	return &elementDumper{c: c}, nil
}

func (d *elementDumper) close() {
	if d != nil {
		d.c.Close()
	}
}

// elements calls fn for each element of set name in table inet
// dialgate; timeout is the element's timeout (zero: none) and left its
// time left.
func (d *elementDumper) elements(name string, fn func(key []byte, end bool, timeout, left time.Duration)) error {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, NFTTable)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, name)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	msgs, err := d.c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return fmt.Errorf("list set %s: %w", name, err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		walk(m.Data[4:], func(typ uint16, v []byte) {
			if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				return
			}
			walk(v, func(typ uint16, elem []byte) {
				if typ != unix.NFTA_LIST_ELEM {
					return
				}
				var key []byte
				var end bool
				var timeout, left time.Duration
				walk(elem, func(typ uint16, v []byte) {
					switch typ {
					case unix.NFTA_SET_ELEM_KEY:
						walk(v, func(typ uint16, v []byte) {
							if typ == unix.NFTA_DATA_VALUE {
								key = v
							}
						})
					case unix.NFTA_SET_ELEM_FLAGS:
						if len(v) >= 4 {
							end = binary.BigEndian.Uint32(v)&unix.NFT_SET_ELEM_INTERVAL_END != 0
						}
					case unix.NFTA_SET_ELEM_TIMEOUT:
						if len(v) >= 8 {
							timeout = time.Duration(binary.BigEndian.Uint64(v)) * time.Millisecond
						}
					case unix.NFTA_SET_ELEM_EXPIRATION:
						if len(v) >= 8 {
							left = time.Duration(binary.BigEndian.Uint64(v)) * time.Millisecond
						}
					}
				})
				if key != nil {
					fn(key, end, timeout, left)
				}
			})
		})
	}
	return nil
}

// walk calls fn for each netlink attribute in b, with its type (flags
// masked off) and payload.
func walk(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:4])&0x3fff, b[4:l])
		al := (l + 3) &^ 3
		if al > len(b) {
			return
		}
		b = b[al:]
	}
}

// readSet reads set d's elements into st: a host set as host -> time
// left, a network set as ranges.
func (b *NFTables) readSet(st *nftState, d nftSetDef) error {
	if b.dumper == nil {
		dd, err := dialDumper(b.ns)
		if err != nil {
			return err
		}
		b.dumper = dd
	}
	if d.kind == netSet {
		var es []nftables.SetElement
		err := b.dumper.elements(d.name, func(key []byte, end bool, timeout, left time.Duration) {
			es = append(es, nftables.SetElement{Key: append([]byte(nil), key...), IntervalEnd: end, Timeout: timeout, Expires: left})
		})
		if err != nil {
			b.dumper.close()
			b.dumper = nil
			return err
		}
		st.nets[d.name] = decodeIntervals(es)
		return nil
	}
	hs := map[netip.Prefix]time.Duration{}
	err := b.dumper.elements(d.name, func(key []byte, _ bool, timeout, left time.Duration) {
		if a, ok := netip.AddrFromSlice(key); ok {
			hs[netip.PrefixFrom(a, a.BitLen())] = remaining(nftables.SetElement{Timeout: timeout, Expires: left})
		}
	})
	if err != nil {
		b.dumper.close()
		b.dumper = nil
		return err
	}
	st.hosts[d.name] = hs
	return nil
}
