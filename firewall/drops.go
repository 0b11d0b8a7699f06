package firewall

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Drop accounting: the kernel itself remembers who the chain's final
// drop (or reject) hits, per source address and service (protocol and
// destination port), with a packet count and when it was last seen. No
// packet goes to user space: each backend keeps kernel sets filled by
// its rules just ahead of the final verdict, bounded in size
// (DropsMaxElem per family; a full set takes no new sources until
// entries expire) and in age (DropsTimeout after the last drop).
//
//   - IPTables: per family, two ipsets of type hash:ip,port.
//     dialgate-drops-v4/-v6 has counters and a timeout: the rule
//     `-m set ! --match-set S src,dst -j SET --add-set S src,dst`
//     adds a new source (the kernel counts the adding packet: its
//     counter starts at 1) and for a known one its match counts the
//     packet. The match does not refresh the timeout, so a source's
//     count covers at most DropsTimeout since its first drop, after
//     which it starts again. dialgate-seen-v4/-v6, without counters,
//     is refreshed by `-j SET --add-set seen src,dst --exist` on every
//     drop: its time left gives the last drop. (An --exist add to the
//     counting set would reset the counter, hence two sets.)
//   - NFTables: per family, one dynamic set drops4/drops6 of
//     address . inet_proto . inet_service with a counter per element
//     and timeout DropsTimeout; `update @dropsN { saddr . l4proto .
//     dport }` counts the packet and refreshes the timeout, so the
//     count covers the source's whole run of drops with gaps under
//     DropsTimeout, and the expiry gives the last drop. Protocols
//     without ports are recorded with port 0.
//
// The sets come and go with the firewall (Apply creates them, Remove
// destroys them); Verify reports a missing one, never its members.
const (
	DropsTimeout = time.Hour
	DropsMaxElem = 1 << 16
)

// Drop is one source the final drop hit, per service.
type Drop struct {
	Addr netip.Addr `json:"addr"`
	// Proto is tcp, udp, icmp, ipv6-icmp or the protocol number; Port
	// is the destination port, 0 for protocols without ports.
	Proto string `json:"proto"`
	Port  uint16 `json:"port,omitempty"`
	// Service is filled in by the daemon from its configuration (see
	// Config.ServiceName).
	Service  string    `json:"service,omitempty"`
	Packets  uint64    `json:"packets"`
	LastSeen time.Time `json:"last_seen"`
}

// protoName names an IP protocol number as Drop.Proto does.
func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "ipv6-icmp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return fmt.Sprint(p)
}

// hasPorts reports whether the protocol's key carries a port.
func hasPorts(proto string) bool { return proto == "tcp" || proto == "udp" }

// ServiceName names the service proto/port belongs to under c: the
// permission code's name (sip-udp, ssh...), else proto/port (or the
// protocol alone when it has no ports).
func (c Config) ServiceName(proto string, port uint16) string {
	for code := 1; code < NumCodes; code++ {
		for _, pr := range c.Services[code] {
			if pr.Contains(proto, port) {
				return CodeName(code)
			}
		}
	}
	if !hasPorts(proto) {
		return proto
	}
	return fmt.Sprintf("%s/%d", proto, port)
}

// DropFilter selects and orders drops for a listing.
type DropFilter struct {
	// Since keeps the drops last seen within it of Now; 0 keeps all.
	Since time.Duration
	// Service keeps one service (as Drop.Service names it); empty keeps
	// all.
	Service string
	// Limit keeps the first Limit after sorting; 0 keeps all.
	Limit int
	Now   time.Time
}

// FilterDrops returns the drops f selects, most packets first (then the
// most recent, then by address and service).
func FilterDrops(ds []Drop, f DropFilter) []Drop {
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	var out []Drop
	for _, d := range ds {
		if f.Since > 0 && now.Sub(d.LastSeen) > f.Since {
			continue
		}
		if f.Service != "" && !strings.EqualFold(d.Service, f.Service) {
			continue
		}
		out = append(out, d)
	}
	SortDrops(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// SortDrops orders drops most packets first, then most recent, then by
// address, protocol and port.
func SortDrops(ds []Drop) {
	slices.SortFunc(ds, func(a, b Drop) int {
		return cmp.Or(cmp.Compare(b.Packets, a.Packets), b.LastSeen.Compare(a.LastSeen),
			a.Addr.Compare(b.Addr), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
}

// DropSummary totals drops: packets, distinct sources, and per service.
type DropSummary struct {
	Packets uint64 `json:"packets"`
	Sources int    `json:"sources"`
	// Services maps a service to its distinct sources and packets.
	Services map[string]ServiceDrops `json:"services,omitempty"`
}

// ServiceDrops is one service's share of a DropSummary.
type ServiceDrops struct {
	Packets uint64 `json:"packets"`
	Sources int    `json:"sources"`
}

// SummarizeDrops totals ds.
func SummarizeDrops(ds []Drop) DropSummary {
	s := DropSummary{Services: map[string]ServiceDrops{}}
	srcs := map[netip.Addr]bool{}
	per := map[string]map[netip.Addr]bool{}
	for _, d := range ds {
		s.Packets += d.Packets
		srcs[d.Addr] = true
		name := cmp.Or(d.Service, d.Proto)
		if per[name] == nil {
			per[name] = map[netip.Addr]bool{}
		}
		per[name][d.Addr] = true
		sd := s.Services[name]
		sd.Packets += d.Packets
		sd.Sources = len(per[name])
		s.Services[name] = sd
	}
	s.Sources = len(srcs)
	return s
}

// lastSeen turns the time an element has left into when it was last
// refreshed, for a set whose elements live DropsTimeout.
func lastSeen(now time.Time, left time.Duration) time.Time {
	return now.Add(left - DropsTimeout).Truncate(time.Second)
}
