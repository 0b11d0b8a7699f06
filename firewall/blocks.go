package firewall

import (
	"context"
	"net/netip"
	"time"
)

// Blocking: sources that failed SIP authentication again and again (the
// daemon counts Asterisk's security events) are put in a kernel block
// set with a timeout, and a rule ahead of everything but loopback drops
// them for every service, replies to their earlier packets included, so
// a scanner's UDP "connection" that Asterisk answered with a challenge
// does not keep passing as established. The rule is there when
// Config.Block is set; the set's members come and go with the daemon's
// decisions and their timeouts, never with Apply, and Verify reports a
// missing block set, never its members. Whitelisted sources are never
// put in it: the daemon checks before it blocks and unblocks a source
// as soon as an entry or a grant admits it.
//
// Names: ipset dialgate-block-v4 / -v6 (hash:ip, timeout, BlockMaxElem);
// nftables sets block-v4 / block-v6 of table inet dialgate.
const (
	BlockMaxElem = 1 << 16
	// BlockMaxTimeout bounds one block.
	BlockMaxTimeout = 7 * 24 * time.Hour
)

// BlockSetName is the ipset of blocked sources of family f.
func BlockSetName(f Family) string { return "dialgate-block-" + f.String() }

// Blocked is a blocked source and its time left.
type Blocked struct {
	Addr netip.Addr    `json:"addr"`
	Left time.Duration `json:"left"`
}

// Blocker is a Backend that can block sources. Block replaces an existing
// block's timeout (d at most BlockMaxTimeout); Unblock of a source not
// blocked is not an error; Blocked lists the sources blocked now.
type Blocker interface {
	Block(ctx context.Context, addr netip.Addr, d time.Duration) error
	Unblock(ctx context.Context, addr netip.Addr) error
	Blocked(ctx context.Context) ([]Blocked, error)
}
