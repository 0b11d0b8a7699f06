package sshpeer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc builds a /proc tree in a temporary directory.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	return &fakeProc{t: t, root: t.TempDir()}
}

// proc is one fake process.
type proc struct {
	pid, ppid int
	comm      string
	environ   []string // nil: no environ file (unreadable)
	netns     string   // "" means net:[1]
	fds       map[int]string
	tcp, tcp6 []string // table lines without the header
}

func (p *fakeProc) add(ps ...proc) {
	p.t.Helper()
	for _, x := range ps {
		dir := filepath.Join(p.root, fmt.Sprint(x.pid))
		p.mkdir(filepath.Join(dir, "ns"))
		p.write(filepath.Join(dir, "stat"), fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 1234 0 0 0 1 2 0 0 20 0 1 0 100 1000 100\n", x.pid, x.comm, x.ppid, x.ppid, x.ppid))
		if x.environ != nil {
			p.write(filepath.Join(dir, "environ"), strings.Join(x.environ, "\x00")+"\x00")
		}
		ns := x.netns
		if ns == "" {
			ns = "net:[1]"
		}
		if err := os.Symlink(ns, filepath.Join(dir, "ns", "net")); err != nil {
			p.t.Fatal(err)
		}
		if x.fds != nil {
			p.mkdir(filepath.Join(dir, "fd"))
			for fd, target := range x.fds {
				if err := os.Symlink(target, filepath.Join(dir, "fd", fmt.Sprint(fd))); err != nil {
					p.t.Fatal(err)
				}
			}
		}
		p.mkdir(filepath.Join(dir, "net"))
		const h4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		const h6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		p.write(filepath.Join(dir, "net", "tcp"), h4+table(x.tcp))
		p.write(filepath.Join(dir, "net", "tcp6"), h6+table(x.tcp6))
	}
}

func table(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "%4d: %s\n", i, l)
	}
	return b.String()
}

func (p *fakeProc) mkdir(d string) {
	if err := os.MkdirAll(d, 0o755); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) write(f, s string) {
	if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *fakeProc) find(pid int) Session {
	return Finder{Proc: p.root, PID: pid, Getenv: func(string) string { return "" }}.Find()
}

// Table lines as an x86 kernel prints them (addresses in host order).
const (
	// [::]:22 listening (the sshd listener's socket).
	listen6 = "00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1000 1 0000000000000000 100 0 0 10 0"
	// ::ffff:203.0.113.1:22 <- ::ffff:203.0.113.10:51234, inode 555.
	session6mapped = "0000000000000000FFFF0000017100CB:0016 0000000000000000FFFF00000A7100CB:C822 01 00000000:00000000 02:0009F1A2 00000000     0        0 555 2 0000000000000000 20 4 31 10 -1"
	// ::ffff:203.0.113.1:40000 -> ::ffff:198.51.100.7:443, inode 777: a
	// connection forwarded with ssh -L.
	forward6mapped = "0000000000000000FFFF0000017100CB:9C40 0000000000000000FFFF0000076433C6:01BB 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1"
	// [2001:db8::1]:2222 <- [2001:db8::10]:40001, inode 666.
	session6 = "B80D0120000000000000000001000000:08AE B80D0120000000000000000010000000:9C41 01 00000000:00000000 02:0009F1A2 00000000     0        0 666 2 0000000000000000 20 4 31 10 -1"
	// 203.0.113.1:22 <- 203.0.113.10:51234, inode 444.
	session4 = "017100CB:0016 0A7100CB:C822 01 00000000:00000000 02:000AB2C3 00000000     0        0 444 2 0000000000000000 20 4 29 10 -1"
	// 0.0.0.0:22 listening.
	listen4 = "00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0"
	// 203.0.113.1:22 <- 203.0.113.99:50000 in TIME_WAIT, inode 0.
	timeWait4 = "017100CB:0016 637100CB:C350 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000"
)

func skipBigEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("table lines are written as a little-endian kernel prints them")
	}
}

func TestParseHexAddrPort(t *testing.T) {
	skipBigEndian(t)
	for in, want := range map[string]string{
		"0100007F:0016":                         "127.0.0.1:22",
		"0A7100CB:C822":                         "203.0.113.10:51234",
		"0000000000000000FFFF00000A7100CB:C822": "[::ffff:203.0.113.10]:51234",
		"B80D0120000000000000000010000000:9C41": "[2001:db8::10]:40001",
		"00000000000000000000000001000000:0016": "[::1]:22",
	} {
		got, err := parseHexAddrPort(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("%s: got %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007F:", "0100007F:10000", "01000:0016", "zz00007F:0016"} {
		if got, err := parseHexAddrPort(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, got)
		}
	}
}

func TestFromEnvFirst(t *testing.T) {
	p := newFakeProc(t)
	p.add(proc{pid: 100, ppid: 1, comm: "dialgate"}, proc{pid: 1, comm: "systemd"})
	env := map[string]string{"SSH_CONNECTION": "198.51.100.9 40000 203.0.113.1 2222"}
	s := Finder{Proc: p.root, PID: 100, Getenv: func(k string) string { return env[k] }}.Find()
	if s.Addr != netip.MustParseAddrPort("198.51.100.9:2222") || s.Lost() {
		t.Fatalf("got %+v", s)
	}
}

func TestFind(t *testing.T) {
	skipBigEndian(t)
	withSSH := []string{"HOME=/home/ann", "SSH_CONNECTION=203.0.113.10 51234 203.0.113.1 22", "SSH_TTY=/dev/pts/0"}
	clientOnly := []string{"SSH_CLIENT=2001:db8::10 40001 2222"}
	sudoEnv := []string{"HOME=/root", "PATH=/usr/sbin:/usr/bin", "SUDO_USER=ann"}
	// The sshd processes of one OpenSSH >= 9.8 session: listener,
	// privileged monitor, unprivileged session process.
	listener := proc{pid: 500, ppid: 1, comm: "sshd", environ: []string{"LANG=C"}, fds: map[int]string{3: "socket:[1000]"}, tcp6: []string{listen6}}
	init := proc{pid: 1, ppid: 0, comm: "systemd", environ: []string{}}
	monitor := proc{pid: 600, ppid: 500, comm: "sshd-session", environ: []string{}, fds: map[int]string{0: "/dev/null", 4: "socket:[555]"}, tcp6: []string{listen6, session6mapped}}
	user := proc{pid: 601, ppid: 600, comm: "sshd-session", environ: []string{}, fds: map[int]string{3: "socket:[777]", 4: "socket:[555]", 7: "pipe:[1]"}, tcp6: []string{listen6, forward6mapped, session6mapped}}
	want := netip.MustParseAddrPort("203.0.113.10:22")

	cases := []struct {
		name  string
		procs []proc
		want  netip.AddrPort
		from  string // substring of From
		lost  bool
	}{
		{
			name: "sudo keeps the login environment",
			procs: []proc{init, listener, monitor, user,
				{pid: 700, ppid: 601, comm: "bash", environ: withSSH},
				{pid: 800, ppid: 700, comm: "sudo", environ: withSSH},
				{pid: 801, ppid: 800, comm: "sudo", environ: withSSH},
				{pid: 900, ppid: 801, comm: "dialgate", environ: sudoEnv}},
			want: want, from: "pid 801 (sudo)",
		},
		{
			name: "sudo -i and su - between the shell and sshd",
			procs: []proc{init, listener, monitor, user,
				{pid: 700, ppid: 601, comm: "bash", environ: withSSH},
				{pid: 710, ppid: 700, comm: "su", environ: []string{"HOME=/root"}},
				{pid: 720, ppid: 710, comm: "bash", environ: []string{"HOME=/root"}},
				{pid: 800, ppid: 720, comm: "sudo", environ: []string{"HOME=/root"}},
				{pid: 810, ppid: 800, comm: "bash", environ: sudoEnv},
				{pid: 900, ppid: 810, comm: "dialgate", environ: sudoEnv}},
			want: want, from: "pid 700 (bash)",
		},
		{
			name: "no environment anywhere: the session's socket, not the forwarded one",
			procs: []proc{init, listener, monitor, user,
				{pid: 700, ppid: 601, comm: "bash"},
				{pid: 710, ppid: 700, comm: "su"},
				{pid: 800, ppid: 710, comm: "sudo", environ: sudoEnv},
				{pid: 900, ppid: 800, comm: "dialgate", environ: sudoEnv}},
			want: want, from: "pid 601 (sshd-session)",
		},
		{
			name: "unreadable session process: the monitor's socket",
			procs: []proc{init, listener, monitor,
				{pid: 601, ppid: 600, comm: "sshd-session"},
				{pid: 700, ppid: 601, comm: "bash", environ: []string{}},
				{pid: 900, ppid: 700, comm: "dialgate", environ: sudoEnv}},
			want: want, from: "pid 600 (sshd-session)",
		},
		{
			name: "older OpenSSH over IPv4, a TIME_WAIT entry beside it",
			procs: []proc{init,
				{pid: 500, ppid: 1, comm: "sshd", fds: map[int]string{3: "socket:[999]"}, tcp: []string{listen4, timeWait4, session4}},
				{pid: 600, ppid: 500, comm: "sshd", fds: map[int]string{4: "socket:[444]"}, tcp: []string{listen4, timeWait4, session4}},
				{pid: 601, ppid: 600, comm: "sshd", fds: map[int]string{4: "socket:[444]"}, tcp: []string{listen4, timeWait4, session4}},
				{pid: 700, ppid: 601, comm: "sh", environ: []string{}},
				{pid: 900, ppid: 700, comm: "dialgate", environ: []string{}}},
			want: want, from: "pid 601 (sshd)",
		},
		{
			name: "IPv6 session on port 2222",
			procs: []proc{init,
				{pid: 600, ppid: 1, comm: "sshd", fds: map[int]string{5: "socket:[666]"}, tcp6: []string{session6}},
				{pid: 900, ppid: 600, comm: "dialgate", environ: []string{}}},
			want: netip.MustParseAddrPort("[2001:db8::10]:2222"), from: "pid 600 (sshd)",
		},
		{
			name: "SSH_CLIENT only",
			procs: []proc{init,
				{pid: 600, ppid: 1, comm: "dropbear"},
				{pid: 700, ppid: 600, comm: "ash", environ: clientOnly},
				{pid: 900, ppid: 700, comm: "dialgate", environ: []string{}}},
			want: netip.MustParseAddrPort("[2001:db8::10]:2222"), from: "pid 700 (ash)",
		},
		{
			name: "no sshd at all",
			procs: []proc{init,
				{pid: 300, ppid: 1, comm: "agetty", environ: []string{}},
				{pid: 700, ppid: 300, comm: "bash", environ: []string{"TERM=linux"}},
				{pid: 800, ppid: 700, comm: "sudo", environ: []string{"TERM=linux"}},
				{pid: 900, ppid: 800, comm: "dialgate", environ: []string{}}},
		},
		{
			name: "sshd but nothing readable: lost",
			procs: []proc{init,
				{pid: 500, ppid: 1, comm: "sshd", fds: map[int]string{3: "socket:[1000]"}, tcp6: []string{listen6}},
				{pid: 600, ppid: 500, comm: "sshd-session", fds: map[int]string{}, tcp6: []string{listen6, session6mapped}},
				{pid: 601, ppid: 600, comm: "sshd-session", fds: map[int]string{0: "/dev/null", 3: "socket:[4242]"}, tcp6: []string{listen6, session6mapped}},
				{pid: 700, ppid: 601, comm: "bash"},
				{pid: 800, ppid: 700, comm: "sudo", environ: sudoEnv},
				{pid: 900, ppid: 800, comm: "dialgate", environ: sudoEnv}},
			lost: true,
		},
		{
			name: "an sshd in another network namespace does not count",
			procs: []proc{init, listener, monitor, user,
				{pid: 700, ppid: 601, comm: "bash", environ: withSSH},
				{pid: 800, ppid: 700, comm: "ip", environ: []string{}, netns: "net:[2]"},
				{pid: 900, ppid: 800, comm: "dialgate", environ: []string{}, netns: "net:[2]"}},
		},
		{
			name: "a name with spaces and parens",
			procs: []proc{init,
				{pid: 600, ppid: 1, comm: "sshd", fds: map[int]string{4: "socket:[444]"}, tcp: []string{session4}},
				{pid: 700, ppid: 600, comm: "my (odd) shell)", environ: []string{}},
				{pid: 900, ppid: 700, comm: "dialgate", environ: []string{}}},
			want: want, from: "pid 600 (sshd)",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newFakeProc(t)
			p.add(c.procs...)
			s := p.find(900)
			if s.Addr != c.want || s.Lost() != c.lost || !strings.Contains(s.From, c.from) {
				t.Fatalf("got %+v; want addr %v from %q, lost %v", s, c.want, c.from, c.lost)
			}
			if c.lost {
				if s.SSHD != 601 || !strings.Contains(s.Problem, "no established TCP connection") || !strings.Contains(s.Warning(), "sshd pid 601") {
					t.Errorf("lost session should name sshd 601 and why: %+v\n%s", s, s.Warning())
				}
			} else if s.Warning() != "" {
				t.Errorf("warning for a session that is not lost: %s", s.Warning())
			}
		})
	}
}

func TestReadStat(t *testing.T) {
	p := newFakeProc(t)
	p.add(proc{pid: 42, ppid: 7, comm: "a) b (c"})
	st, err := readStat(p.root, 42)
	if err != nil || st.comm != "a) b (c" || st.ppid != 7 {
		t.Fatalf("got %+v, %v", st, err)
	}
	p.write(filepath.Join(p.root, "42", "stat"), "42 (x")
	if _, err := readStat(p.root, 42); err == nil {
		t.Fatal("malformed stat read")
	}
}
