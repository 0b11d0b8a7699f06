// Package storetest is the conformance suite for implementations of
// store.Store. Callers program against the interface, not a backend, so
// every backend must answer the same way: Run holds that behaviour in one
// place, and each backend's tests call it with an opener for a fresh
// database.
//
// The suite checks behaviour only through store.Store and store.Tx. What
// depends on how a backend keeps its data (files, locks, on-disk indexes,
// upgrades, persistence across a restart) belongs to that backend's own
// tests.
//
// A backend may run an Update's closure more than once (an optimistic
// backend retries it after a conflict), so the closures here assign their
// results rather than accumulate them.
package storetest
