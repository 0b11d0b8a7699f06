// Package firewall owns the kernel side of dialgate: it turns a desired
// State (who may reach which service) into one iptables/ip6tables chain,
// DIALGATE, jumped to first from INPUT, plus one ipset hash:net set per
// permission code and address family.
//
// The rules are static and derived only from Config; everything that
// changes at run time (static entries, FQDN addresses, phone grants) lives
// in the sets. That keeps the common change a single netlink message and
// lets the kernel expire phone grants by itself through per-entry
// timeouts, even when dialgate is not running.
//
// Backend is the seam for kernel implementations (this package ships the
// iptables+ipset one); Apply is idempotent and a Rebuild replaces the
// chain and sets without ever leaving the host unprotected: a new chain is
// built and the INPUT jump moved onto it, and fresh sets are filled and
// swapped in with ipset swap.
package firewall
