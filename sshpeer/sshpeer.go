package sshpeer

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// Session is what the finder learnt about the SSH session a process
// runs in.
type Session struct {
	// Addr is the client's address with the server's SSH port: the
	// address and port the lockout guard must keep open. Invalid when
	// no session was found.
	Addr netip.AddrPort
	// From says where Addr came from, for messages.
	From string
	// SSHD is the pid of the nearest sshd ancestor, 0 if none was seen
	// (or Addr came from the process's own environment).
	SSHD int
	// Problem says why Addr was not found although SSHD is set.
	Problem string
}

// Found reports whether the session's address is known.
func (s Session) Found() bool { return s.Addr.IsValid() }

// Lost reports a command that runs below an sshd whose session could not
// be found: whatever protects that session is off, and the user must be
// told.
func (s Session) Lost() bool { return !s.Addr.IsValid() && s.SSHD != 0 }

// Warning explains a lost session in one line; empty unless Lost.
func (s Session) Warning() string {
	if !s.Lost() {
		return ""
	}
	return fmt.Sprintf("this command runs in an SSH session (sshd pid %d) whose address cannot be found: %s", s.SSHD, s.Problem)
}

// Finder finds the SSH session of a process. The zero Finder looks at
// the calling process in /proc.
type Finder struct {
	// Proc is the proc file system's root; empty means /proc.
	Proc string
	// PID is the process to start from; 0 means the caller.
	PID int
	// Getenv reads the process's own environment; nil means os.Getenv.
	Getenv func(string) string
}

// Find returns the SSH session the calling process runs in.
func Find() Session { return Finder{}.Find() }

// Find returns the SSH session f's process runs in: from its
// environment, else from its ancestry (see the package documentation).
func (f Finder) Find() Session {
	getenv := f.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if a := FromEnv(getenv); a.IsValid() {
		return Session{Addr: a, From: "the environment (SSH_CONNECTION)"}
	}
	return walk(cmp.Or(f.Proc, "/proc"), cmp.Or(f.PID, os.Getpid()))
}

// FromEnv reads the session from SSH_CONNECTION ("client_ip client_port
// server_ip server_port") or, failing that, SSH_CLIENT ("client_ip
// client_port server_port"): the client's address with the server's
// port, invalid if neither parses.
func FromEnv(getenv func(string) string) netip.AddrPort {
	if f := strings.Fields(getenv("SSH_CONNECTION")); len(f) == 4 {
		if ap, err := netip.ParseAddrPort(net.JoinHostPort(f[0], f[3])); err == nil {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if f := strings.Fields(getenv("SSH_CLIENT")); len(f) == 3 {
		if ap, err := netip.ParseAddrPort(net.JoinHostPort(f[0], f[2])); err == nil {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	return netip.AddrPort{}
}

// IsSSHD reports whether comm names an SSH server process that may carry
// a session: OpenSSH's sshd, its per-session sshd-session (OpenSSH 9.8
// and later), or Dropbear.
func IsSSHD(comm string) bool {
	switch comm {
	case "sshd", "sshd-session", "dropbear":
		return true
	}
	return false
}

// maxDepth bounds the walk; real ancestries are a dozen deep at most.
const maxDepth = 256

func walk(proc string, pid int) Session {
	var s Session
	var problems []string
	note := func(err error) {
		if err != nil && len(problems) < 4 {
			problems = append(problems, err.Error())
		}
	}
	ns, _ := netNS(proc, pid)
	for depth := 0; pid > 0 && depth < maxDepth; depth++ {
		st, err := readStat(proc, pid)
		if err != nil {
			note(err)
			break
		}
		if depth > 0 && ns != "" {
			if n, err := netNS(proc, pid); err == nil && n != ns {
				break // a session out there does not cross this namespace's firewall
			}
		}
		a, err := environAddr(proc, pid)
		if a.IsValid() {
			s.Addr, s.From = a, fmt.Sprintf("SSH_CONNECTION of pid %d (%s)", pid, st.comm)
			return s
		}
		if !errors.Is(err, os.ErrNotExist) {
			note(err)
		}
		switch {
		case IsSSHD(st.comm):
			if s.SSHD == 0 {
				s.SSHD = pid
			}
			a, err := socketAddr(proc, pid)
			if err == nil {
				s.Addr, s.From = a, fmt.Sprintf("TCP connection of pid %d (%s)", pid, st.comm)
				return s
			}
			note(err)
		case s.SSHD != 0:
			// Above the sshd chain: the listener's parents know nothing.
			s.Problem = problem(problems)
			return s
		}
		pid = st.ppid
	}
	if s.SSHD != 0 {
		s.Problem = problem(problems)
	}
	return s
}

func problem(problems []string) string {
	p := "no SSH_CONNECTION in any environment up to sshd and no established TCP connection held by it"
	if len(problems) > 0 {
		p += ": " + strings.Join(problems, "; ")
	}
	return p
}

// environAddr reads SSH_CONNECTION or SSH_CLIENT from a process's
// initial environment.
func environAddr(proc string, pid int) (netip.AddrPort, error) {
	b, err := os.ReadFile(pidPath(proc, pid, "environ"))
	if err != nil {
		return netip.AddrPort{}, err
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && (k == "SSH_CONNECTION" || k == "SSH_CLIENT") {
			env[k] = v
		}
	}
	return FromEnv(func(k string) string { return env[k] }), nil
}
