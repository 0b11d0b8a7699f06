package firewall

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ipsetBatch adds set members many at a time: one netlink message per
// member, as netlink.IpsetAdd would send, but written to the socket in
// chunks and acknowledged together, so loading 10 000 members costs a
// few dozen system calls instead of 20 000.
type ipsetBatch struct {
	fd  int
	seq uint32
}

// batchChunk bounds one write. Each acknowledgement occupies about a
// kilobyte of receive buffer (the kernel counts a buffer's true size, not
// the 36 bytes of message), so a chunk must fit the receive buffer.
const (
	batchChunk  = 256
	batchRcvBuf = 4 << 20
)

// newIpsetBatch opens a netfilter netlink socket in the current network
// namespace.
func newIpsetBatch() (*ipsetBatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// Room for a chunk's acknowledgements; FORCE needs CAP_NET_ADMIN,
	// which the daemon has, and the plain option is the fallback.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, batchRcvBuf) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, batchRcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &ipsetBatch{fd: fd}, nil
}

func (b *ipsetBatch) close() { unix.Close(b.fd) }

// addMessage builds the IPSET_CMD_ADD message for one member, replacing
// an existing entry (and its timeout) rather than failing on it.
func addMessage(set string, m Member) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(nl.IPSET_CMD_ADD|(unix.NFNL_SUBSYS_IPSET<<8), nl.GetIpsetFlags(nl.IPSET_CMD_ADD))
	req.AddData(&nl.Nfgenmsg{NfgenFamily: uint8(unix.AF_NETLINK), Version: nl.NFNETLINK_V0})
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_PROTOCOL, nl.Uint8Attr(nl.IPSET_PROTOCOL)))
	req.AddData(nl.NewRtAttr(nl.IPSET_ATTR_SETNAME, nl.ZeroTerminated(set)))
	data := nl.NewRtAttr(nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), nil)
	data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_TIMEOUT | nl.NLA_F_NET_BYTEORDER, Value: timeoutSeconds(m.Timeout)})
	addrType := nl.IPSET_ATTR_IPADDR_IPV6
	if m.Prefix.Addr().Is4() {
		addrType = nl.IPSET_ATTR_IPADDR_IPV4
	}
	ip := nl.NewRtAttr(addrType|int(nl.NLA_F_NET_BYTEORDER), m.Prefix.Addr().AsSlice())
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), ip.Serialize()))
	data.AddChild(nl.NewRtAttr(nl.IPSET_ATTR_CIDR, nl.Uint8Attr(uint8(m.Prefix.Bits()))))
	data.AddChild(&nl.Uint32Attribute{Type: nl.IPSET_ATTR_LINENO | nl.NLA_F_NET_BYTEORDER, Value: 0})
	req.AddData(data)
	return req
}

// appendAddMessage appends the same bytes addMessage(set, m).Serialize()
// produces, with the given sequence number, without the two dozen small
// allocations the generic builder makes: at 10 000 members that is the
// difference between matching `ipset restore` and trailing it.
func appendAddMessage(buf []byte, seq uint32, set string, m Member) []byte {
	return appendMemberMessage(buf, seq, nl.IPSET_CMD_ADD, set, m)
}

// appendMemberMessage builds an IPSET_CMD_ADD or IPSET_CMD_DEL message.
// Neither carries NLM_F_EXCL: an add replaces an existing entry (and its
// timeout), a delete of a member that is not there succeeds. A delete
// carries no timeout.
func appendMemberMessage(buf []byte, seq uint32, cmd int, set string, m Member) []byte {
	ne := nl.NativeEndian()
	start := len(buf)
	buf = append(buf, make([]byte, unix.SizeofNlMsghdr)...)
	// nfgenmsg: family, version, resource id (big endian)
	buf = append(buf, uint8(unix.AF_NETLINK), nl.NFNETLINK_V0, 0, 0)
	// attr appends one attribute, padded to 4 bytes from base (the start
	// of the message, or of the nested buffer being built).
	attrAt := func(base int) func(buf []byte, typ int, payload ...[]byte) []byte {
		return func(buf []byte, typ int, payload ...[]byte) []byte {
			n := unix.SizeofRtAttr
			for _, p := range payload {
				n += len(p)
			}
			var hdr [4]byte
			ne.PutUint16(hdr[0:2], uint16(n))
			ne.PutUint16(hdr[2:4], uint16(typ))
			buf = append(buf, hdr[:]...)
			for _, p := range payload {
				buf = append(buf, p...)
			}
			for (len(buf)-base)%unix.NLA_ALIGNTO != 0 {
				buf = append(buf, 0)
			}
			return buf
		}
	}
	attr, nested := attrAt(start), attrAt(0)
	be32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	buf = attr(buf, nl.IPSET_ATTR_PROTOCOL, []byte{nl.IPSET_PROTOCOL})
	buf = attr(buf, nl.IPSET_ATTR_SETNAME, []byte(set), []byte{0})

	addrType := nl.IPSET_ATTR_IPADDR_IPV6
	if m.Prefix.Addr().Is4() {
		addrType = nl.IPSET_ATTR_IPADDR_IPV4
	}
	var ip []byte
	ip = nested(ip, addrType|int(nl.NLA_F_NET_BYTEORDER), m.Prefix.Addr().AsSlice())
	var data []byte
	if cmd == nl.IPSET_CMD_ADD {
		data = nested(data, nl.IPSET_ATTR_TIMEOUT|int(nl.NLA_F_NET_BYTEORDER), be32(timeoutSeconds(m.Timeout)))
	}
	data = nested(data, nl.IPSET_ATTR_IP|int(nl.NLA_F_NESTED), ip)
	data = nested(data, nl.IPSET_ATTR_CIDR, []byte{uint8(m.Prefix.Bits())})
	data = nested(data, nl.IPSET_ATTR_LINENO|int(nl.NLA_F_NET_BYTEORDER), be32(0))
	buf = attr(buf, nl.IPSET_ATTR_DATA|int(nl.NLA_F_NESTED), data)

	h := buf[start:]
	ne.PutUint32(h[0:4], uint32(len(h)))
	ne.PutUint16(h[4:6], uint16(cmd|(unix.NFNL_SUBSYS_IPSET<<8)))
	ne.PutUint16(h[6:8], uint16(nl.GetIpsetFlags(cmd)))
	ne.PutUint32(h[8:12], seq)
	ne.PutUint32(h[12:16], 0)
	return buf
}

// add puts members into set. Every message is acknowledged; the first
// refusal is returned, naming the member, after the whole chunk's
// acknowledgements have been read so the socket stays in step.
func (b *ipsetBatch) add(set string, members []Member) error {
	return b.exec(nl.IPSET_CMD_ADD, set, members)
}

// del takes members out of set; members that are not there are no error.
func (b *ipsetBatch) del(set string, members []Member) error {
	return b.exec(nl.IPSET_CMD_DEL, set, members)
}

func (b *ipsetBatch) exec(cmd int, set string, members []Member) error {
	verb, prep := "add", "to"
	if cmd == nl.IPSET_CMD_DEL {
		verb, prep = "remove", "from"
	}
	buf := make([]byte, 0, batchChunk*96)
	ack := make([]byte, 1<<17)
	for start := 0; start < len(members); start += batchChunk {
		chunk := members[start:min(start+batchChunk, len(members))]
		buf = buf[:0]
		seqs := make(map[uint32]Member, len(chunk))
		for _, m := range chunk {
			b.seq++
			seqs[b.seq] = m
			buf = appendMemberMessage(buf, b.seq, cmd, set, m)
		}
		if err := unix.Sendto(b.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("%s %s %s: send: %w", verb, prep, set, err)
		}
		var first error
		for pending := len(chunk); pending > 0; {
			n, _, err := unix.Recvfrom(b.fd, ack, 0)
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return fmt.Errorf("%s %s %s: receive: %w", verb, prep, set, err)
			}
			msgs, err := syscall.ParseNetlinkMessage(ack[:n])
			if err != nil {
				return fmt.Errorf("%s %s %s: %w", verb, prep, set, err)
			}
			for _, msg := range msgs {
				m, ours := seqs[msg.Header.Seq]
				if !ours || msg.Header.Type != unix.NLMSG_ERROR || len(msg.Data) < 4 {
					continue
				}
				pending--
				errno := -int32(nl.NativeEndian().Uint32(msg.Data[:4]))
				if cmd == nl.IPSET_CMD_DEL && errno == nl.IPSET_ERR_EXIST {
					errno = 0 // not there: nothing to remove
				}
				if errno != 0 && first == nil {
					var cause error = syscall.Errno(errno)
					if errno >= nl.IPSET_ERR_PRIVATE {
						cause = nl.IPSetError(uintptr(errno))
					}
					first = fmt.Errorf("%s %s %s %s: %w", verb, m.Prefix, prep, set, cause)
				}
			}
		}
		if first != nil {
			return first
		}
	}
	return nil
}
