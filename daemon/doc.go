// Package daemon wires dialgate together: `dialgate serve` loads the
// configuration, opens the store, makes the kernel firewall match it, and
// answers the LocalAPI, HTTP+JSON on a root-only unix socket, through
// which every other CLI command reads and changes state (as tailscale talks
// to tailscaled). Only the daemon opens the database while it runs.
//
// Every change follows one path: validate, write to the store in one
// transaction, compute the desired firewall state from the store, refuse
// if it would cut off the administrator's SSH session, apply it to the
// kernel, and commit only if the kernel took it. A failed apply rolls the
// transaction back and puts the previous state back in the kernel, so
// nothing is ever half-applied. A change that only touches some members
// (a grant, an entry) computes the desired members of just those
// prefixes, so its cost does not grow with the whitelist.
//
// The phone door lives in package door; the daemon gives it the store, a
// grant function (Daemon.Grant, through the same change path), the audit
// log, the clock, metrics and the AMI contact lookup.
package daemon
