// Package auth owns who may get what: the rules an account, its
// permission list and its whitelist entries must satisfy before anything
// is stored or reaches the kernel, and the primitives the phone door
// decides with: argon2id passcode hashes, caller ID and account number
// forms, which addresses a grant may open, lockouts and rate limits.
//
// Every value an administrator or a caller on the phone supplies passes
// through here first, so a malformed address, a network that would open
// the whole Internet, or a comment carrying control characters is refused
// with an error that names the value, and nothing is half-stored.
package auth
