// Package door is the phone door: one FastAGI call from answer to grant.
//
// A traveler dials the access extension; Asterisk hands the call to the
// door over FastAGI. The door identifies the account, checks one passcode
// against it, finds the address to open and asks its GrantFunc to open it
// for a while. It leaves the hangup to the dialplan, which reads the
// outcome from DIALGATE_RESULT (granted, denied, locked, lan, hangup,
// error) and DIALGATE_REASON.
//
// # Identify, then verify
//
// Every passcode check costs one argon2id hash, on purpose. Checking a
// keyed passcode against every account would make each call cost as many
// hashes as there are accounts, and every wrong guess a CPU attack on the
// PBX. So the door first decides which account is calling, without
// hashing, and then verifies one hash:
//
//  1. The calling SIP endpoint is an account's extension (the channel
//     SIP/201-... or PJSIP/201-... of an account with extension 201):
//     Asterisk authenticated that phone, no prompt.
//  2. The caller ID is bound to an account (account set --callerid):
//     no prompt.
//  3. Otherwise the caller keys the account number (sound agent-user),
//     then the passcode (agent-pass). An unknown number is checked
//     against a dummy hash so that the time taken does not tell a
//     guesser which numbers exist.
//
// A call therefore costs at most one hash per try, whatever the number of
// accounts. Lookups are index reads in the store.
//
// # Threat model
//
// A stolen database yields the argon2id hashes of short numeric
// passcodes. Their cost (7 MiB, 5 passes by default) slows an offline
// search, but a 6-digit passcode falls in hours on one GPU: treat a stolen
// database as stolen passcodes and change them. Account numbers and bound
// caller IDs are identifiers, not secrets.
//
// A caller on the phone may guess. Per try the door checks, in order:
// that no lockout key of the call is locked, a per-identity rate (a bound
// identity has its own bucket, identity_rate_per_minute), the shared rate
// of calls that keyed an account number (rate_per_minute), and the global
// ceiling (max_checks_per_minute), the last line. A try is reserved
// against every lockout key before the hash, so parallel calls cannot
// take more than max_failures tries within failure_window. Lockout keys
// are what belongs to one caller: the caller ID (when one is presented),
// and the account: "bound:alice" for a caller identified by extension or
// caller ID, "num:<number>" for one who keyed a number, whether an
// account has it or not, so that a lock never tells a guesser which
// numbers exist.
// Never the channel's peer: every caller through one provider trunk or
// Local channel shares that, and one caller's guesses would lock them all.
//
// So a guesser gets at most max_failures tries per account number per
// failure_window (5 per 15 minutes by default) and, across all accounts,
// rate_per_minute tries a minute (60 by default), each costing the PBX
// one hash. A guesser who spoofs a bound caller ID can lock that
// account's bound door for lock_for; `dialgate lockouts clear` reopens it.
// A success never clears a lock or earlier failures: they age out.
//
// The door never logs or audits the digits keyed, only how many.
package door
