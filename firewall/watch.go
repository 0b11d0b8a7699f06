package firewall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// This file listens to nftables' change notifications (what `nft
// monitor` shows): every transaction that adds or deletes a table,
// chain, rule, set or element is announced on the NFNLGRP_NFTABLES
// multicast group, one message per object, then a NEWGEN message naming
// the process that committed it. iptables-nft edits go through nftables
// too, so an `iptables -F DIALGATE` is heard as well; ipset and
// iptables-legacy send nothing.

// nftWatch joins the notifications of namespace ns and sends a
// KernelChange after each transaction that touched a table wanted
// selects (by nfproto family and table name) from a socket that own does
// not claim (own may be nil).
func nftWatch(ctx context.Context, ns int, wanted func(family byte, table string) bool, own func(port uint32) bool) (<-chan KernelChange, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables notifications: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, fmt.Errorf("firewall: nftables notifications: %w", err)
	}
	// A burst (a big rebuild) must not overflow the buffer; if it does,
	// the overflow is reported as a change.
	_ = c.SetReadBuffer(4 << 20)
	out := make(chan KernelChange, 1)
	send := func(k KernelChange) {
		select {
		case out <- k:
		default: // one is waiting already: the latest replaces it
			select {
			case <-out:
			default:
			}
			select {
			case out <- k:
			default:
			}
		}
	}
	var done atomic.Bool
	go func() {
		<-ctx.Done()
		done.Store(true)
		c.Close()
	}()
	go func() {
		defer close(out)
		pending := false
		for {
			msgs, err := c.Receive()
			if err != nil {
				if done.Load() {
					return
				}
				if errors.Is(err, unix.ENOBUFS) {
					send(KernelChange{By: "unknown (notifications overflowed)"})
					continue
				}
				return
			}
			for _, m := range msgs {
				if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
					continue
				}
				if m.Header.Type&0xff == unix.NFT_MSG_NEWGEN {
					if pending {
						send(KernelChange{By: genProcess(m.Data[4:])})
						pending = false
					}
					continue
				}
				if own != nil && own(m.Header.PID) {
					continue
				}
				if wanted(m.Data[0], attrString(m.Data[4:], 1)) {
					pending = true
				}
			}
		}
	}()
	return out, nil
}

// attrString returns attribute typ of an nftables message as a string.
// Attribute 1 is the table's name in every table, chain, rule, set and
// element message.
func attrString(b []byte, typ uint16) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == typ {
			return ad.String()
		}
	}
	return ""
}

// genProcess names the process a NEWGEN message says committed the
// transaction: "nft[4242]".
func genProcess(b []byte) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	ad.ByteOrder = binary.BigEndian
	var pid uint32
	var name string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_PROC_PID:
			pid = ad.Uint32()
		case unix.NFTA_GEN_PROC_NAME:
			name = ad.String()
		}
	}
	switch {
	case name != "" && pid != 0:
		return fmt.Sprintf("%s[%d]", name, pid)
	case pid != 0:
		return fmt.Sprintf("pid %d", pid)
	}
	return name
}

// socketPort returns the netlink port a socket is bound to.
func socketPort(c *netlink.Conn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var port uint32
	var serr error
	err = raw.Control(func(fd uintptr) {
		sa, err := unix.Getsockname(int(fd))
		if err != nil {
			serr = err
			return
		}
		if nl, ok := sa.(*unix.SockaddrNetlink); ok {
			port = nl.Pid
		}
	})
	return port, errors.Join(err, serr)
}

// Watch implements Watcher: changes to table inet dialgate made by any
// other socket than the backend's own.
func (b *NFTables) Watch(ctx context.Context) (<-chan KernelChange, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	ns := b.ns
	b.mu.Unlock()
	return nftWatch(ctx, ns, func(family byte, table string) bool {
		return family == unix.NFPROTO_INET && table == NFTTable
	}, func(port uint32) bool { return port != 0 && port == b.port.Load() })
}

// Watch implements Watcher: changes to the filter tables of
// iptables-nft. With iptables-legacy nothing is ever heard, and ipset
// changes never are: the watchdog's polling finds those.
func (b *IPTables) Watch(ctx context.Context) (<-chan KernelChange, error) {
	b.mu.Lock()
	closed, ns := b.closed, b.ns
	b.mu.Unlock()
	if closed {
		return nil, errIPTClosed
	}
	return nftWatch(ctx, ns, func(family byte, name string) bool {
		return (family == unix.NFPROTO_IPV4 || family == unix.NFPROTO_IPV6) && name == table
	}, nil)
}

var (
	_ Watcher = (*NFTables)(nil)
	_ Watcher = (*IPTables)(nil)
)
