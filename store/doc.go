// Package store owns dialgate's persistent state: accounts, static whitelist
// entries, phone grants, the FQDN cache of last-known addresses, the audit
// log and passcode lockouts.
//
// The only backend today is an embedded bbolt file (Open, *DB). Callers
// program against the Store and Tx interfaces so that a shared backend (for
// several PBXes behind one whitelist) can be added without touching them.
//
// Every change happens inside one transaction (Store.Update): either all of
// it reaches the disk or none of it does, even if the process is killed.
// Values are stored as JSON records carrying a version number, so a later
// dialgate can recognise and migrate what an earlier one wrote; the database
// as a whole carries a schema version that Open checks.
//
// The phone door finds an account by door number or caller ID through an
// index (AccountByNumber, AccountByCallerID, AccountsByExtension) that the
// account methods keep in step in the same transaction, so a lookup costs
// the same with ten accounts or ten thousand. The index is derived data:
// Open builds it for a database written before it existed.
//
// The store records values; it does not interpret them. Canonicalising
// addresses, refusing dangerous entries, hashing passcodes and deciding
// who may have a grant belong to the firewall and auth packages.
//
// bbolt admits one process at a time, so only "dialgate serve" (and
// "dialgate init" before the daemon has ever run) open the database; a
// second opener fails fast with ErrLocked rather than waiting.
package store
