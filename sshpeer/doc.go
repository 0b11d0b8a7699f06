// Package sshpeer finds the SSH session a command runs in, even when
// sudo, sudo -i or su - removed SSH_CONNECTION from its environment, so
// that dialgate's lockout guard keeps protecting the administrator's
// session and `dialgate init` whitelists the administrator's address.
//
// The environment comes first. Failing that, the process ancestry is
// walked (/proc/<pid>/stat, parent by parent) while it stays in the
// caller's network namespace: the nearest ancestor whose initial
// environment (/proc/<pid>/environ) holds SSH_CONNECTION or SSH_CLIENT
// answers, typically sudo itself or the login shell sshd started; at
// the nearest sshd (comm "sshd", "sshd-session" on OpenSSH 9.8 and
// later, or "dropbear") the established TCP connection it holds answers:
// its fd symlinks socket:[inode] matched against /proc/<pid>/net/tcp and
// tcp6, the remote address being the client and the local port the SSH
// port the guard must keep open.
//
// A command that runs below an sshd but whose session cannot be found
// (the reason is in Session.Problem) must say so: Session.Lost reports
// it, and the CLI warns that the guard is off.
//
// An ancestor in another network namespace ends the walk: an SSH
// session there does not pass through this namespace's firewall.
package sshpeer
