// Package fwfake is an in-memory firewall.Backend for in-process tests of
// the daemon and the phone door: no root, no kernel, no network
// namespaces, and every call done in microseconds.
//
// A Backend models what the iptables backend leaves in the kernel: a
// chain per address family, built from the applied Config, and one set
// per permission code and family, named firewall.SetName(code, family),
// whose members carry the kernel's per-entry timeouts. Timeouts are
// rounded up to whole seconds and capped as the real backends do, and run
// out against an injectable clock (Backend.Now, see Clock), so a phone
// grant disappears from Status, State, Members and Admits when it
// expires, as the kernel would drop it.
//
// Beyond the Backend methods, tests get:
//
//   - Admits, which answers whether a new connection would pass, from the
//     applied Config and the members still alive (firewall.State.Admits
//     does the rule walk);
//   - State, Members and Loaded, to inspect what is "in the kernel";
//   - Calls and ChainBuilds, to count what the code under test did;
//   - FailNext and FailAlways, to make any method fail on demand. An
//     injected failure changes nothing and is returned wrapped, so
//     errors.Is finds the injected error;
//   - FlushChain, InsertAhead, FlushSet, PutMember and LeaveTemp, to
//     tamper with the "kernel" behind the code's back, as an
//     `iptables -F`, a foreign rule or fail2ban's chain ahead of the jump,
//     an `ipset flush` or add, or a rebuild killed half-way would. Verify
//     reports it, Admits lets everyone in while the chain is flushed or a
//     rule that can accept runs ahead of it, and the next Apply or Rebuild
//     repairs it (harmless rules ahead stay). Watch hears of each
//     tampering unless QuietTamper (ipset and iptables-legacy send no
//     notifications).
//
// Like the real backends, Apply and Rebuild validate the Config, AddMember
// and a SyncMembers that adds need the sets to exist (an Apply first),
// DelMember of an absent member is not an error, and Close leaves the
// "kernel" as it is but refuses further calls. Before the first Apply and
// after Remove no chain is loaded, so nothing is filtered and Admits
// reports true for everyone.
//
// A Backend is safe for concurrent use.
package fwfake
