// Package firewall owns the kernel side of dialgate: it turns a desired
// State (who may reach which service) into filtering rules plus kernel
// sets, one per permission code and address family.
//
// The rules are static and derived only from Config; everything that
// changes at run time (static entries, FQDN addresses, phone grants) lives
// in the sets. That keeps the common change a single netlink message and
// lets the kernel expire phone grants by itself through per-entry
// timeouts, even when dialgate is not running.
//
// Backend is the seam for kernel implementations. This package ships two,
// with the same rules in the same order; New picks one by name:
//
//   - IPTables: one iptables/ip6tables chain, DIALGATE, jumped to first
//     from INPUT, and ipset hash:net sets dialgate-<code>-v4/-v6. A
//     rebuild builds a new chain and moves the INPUT jump onto it in one
//     iptables-restore transaction, and fills fresh sets and swaps them
//     in with ipset swap.
//   - NFTables: one nftables table, inet dialgate, with a base chain at
//     input (priority filter - 10) and, per code and family, a hash set
//     of host addresses and an interval set of networks. Every change is
//     one netlink transaction.
//
// Apply is idempotent, and neither backend ever leaves the host without
// its rules while it works.
//
// Verify compares the kernel with a desired State without changing it
// (the rules, the jump and what runs ahead of it, the sets' members and
// leftovers of an interrupted rebuild) and returns the Drift in words;
// Apply repairs it. It reads each family's table once (`iptables -S`)
// and the sets with one dump each, so a watchdog can run it every
// second; both backends also implement Watcher, which hears of rule
// changes from nftables' notifications (iptables-nft's included) so a
// check can follow a change at once. Rules ahead of dialgate's jump that
// cannot accept a packet (fail2ban's f2b-* chains) are harmless and stay;
// one that can accept is drift, and Apply moves the jump in front of it.
// Status reports both, and in Coexistence what it found of other
// firewalls (the FreePBX Firewall module, fail2ban, the other backend).
package firewall
