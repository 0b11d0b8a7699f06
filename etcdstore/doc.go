// Package etcdstore keeps a dialgate database in etcd, shared by several
// PBXes: each node reads its own local replica (a store.DB in replica
// mode), commits every change to etcd in one transaction that fails if
// another node committed first, and follows etcd's watch to apply other
// nodes' changes to its replica.
//
// What a node does when etcd is out of reach follows from that split:
// reads, and so the firewall, the door's lookups and status, carry on from
// the replica (never emptied, kept across restarts); changes, door grants
// included, are refused with ErrUnreachable, because a grant or a lockout
// counter recorded on one side of a partition only would let the two sides
// disagree about who is trusted and give a guesser a fresh budget on each
// side. On reconnection the watch resumes from the replica's revision, or
// reloads everything if etcd compacted that revision away.
package etcdstore
