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
// Only Open with Options.Create ("dialgate init") makes a new database;
// without it a missing, empty or never-initialised file is ErrNoDatabase,
// because a whitelist started from nothing locks everybody out. An
// existing file is read with plain reads before bbolt maps it (bbolt
// crashes the process on a truncated file) and passes bbolt's consistency
// check, or Open fails with ErrDamaged and changes nothing. Backup and
// SaveBackup make checked, consistent copies; CheckFile and CheckCopy
// check a file or a running database.
//
// Every audit record's fields are bounded (MaxAuditField) where it is
// written, and PurgeAudit applies a retention by age and count.
//
// bbolt admits one process at a time, so only "dialgate serve" (and
// "dialgate init" before the daemon has ever run) open the database; a
// second opener fails fast with ErrLocked rather than waiting.
package store
