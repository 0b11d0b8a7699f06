// Package entryfile reads and writes dialgate's whitelist file: the text
// that `dialgate export` writes and `dialgate allow --file` reads back,
// one account or entry a line, so a whitelist can be kept in version
// control, moved to another server or edited in bulk.
//
//	# comment lines and blank lines are ignored
//	account alice perms=0 comment="road warrior"
//	alice ip 203.0.113.7
//	alice cidr 198.51.100.0/24 perms=1,2 comment="branch office"
//	alice fqdn home.example.org refresh=1m
//	bob ip 2001:db8::7 force
//
// An account line creates the account when it does not exist (with those
// perms and comment) and leaves an existing one as it is; an entry line
// needs its account to exist or to be defined in the file. Values are
// checked by the daemon as for `dialgate allow`; this package checks only
// the shape of each line, naming the line of any error. The same file can
// be JSON (the Document type), which export writes with --json.
package entryfile
