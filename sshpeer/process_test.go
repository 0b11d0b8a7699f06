package sshpeer

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/sshpeer/sshpeertest"
)

// findArg makes the test binary print what Find sees and exit.
const findArg = "-sshpeer.find"

func TestMain(m *testing.M) {
	sshpeertest.Main()
	if len(os.Args) == 2 && os.Args[1] == findArg {
		b, _ := json.Marshal(Find())
		fmt.Printf("SESSION %s\n", b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func session(t *testing.T, r sshpeertest.Reply) Session {
	t.Helper()
	for _, l := range strings.Split(r.Stdout, "\n") {
		if j, ok := strings.CutPrefix(l, "SESSION "); ok {
			var s Session
			if err := json.Unmarshal([]byte(j), &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	t.Fatalf("no session printed (exit %d):\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	return Session{}
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestRealProcessTree runs the finder in real processes: below a process
// named sshd that holds a real TCP connection in a network namespace,
// behind a shell, su - or setsid, and env -i, which leave it no
// SSH_CONNECTION of its own.
func TestRealProcessTree(t *testing.T) {
	ns := sshpeertest.NetNS(t)
	sshd := sshpeertest.StartSSHD(t, ns, "[::]:2222")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	find := quote(self) + " " + findArg
	path := "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// sh -c 'cmd; exit $?' stays in the tree as the login shell would.
	shell := func(script string) []string { return []string{"/bin/sh", "-c", script + "; exit $?"} }
	v4, v6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")

	type tc struct {
		name string
		from netip.Addr
		env  []string
		argv []string
		want netip.AddrPort
		via  string
	}
	cases := []tc{
		{"env -i under a shell without SSH_CONNECTION: the sshd's socket (IPv4-mapped)", v4,
			[]string{path}, shell("env -i " + find),
			netip.MustParseAddrPort("127.0.0.1:2222"), "(sshd)"},
		{"IPv6", v6,
			[]string{path}, shell("env -i " + find),
			netip.MustParseAddrPort("[::1]:2222"), "(sshd)"},
		{"setsid and env -i below a login shell that has SSH_CONNECTION", v4,
			[]string{path, "SSH_CONNECTION=198.51.100.7 40000 127.0.0.1 2222"}, shell("setsid env -i " + find),
			netip.MustParseAddrPort("198.51.100.7:2222"), "(sh)"},
	}
	if _, err := exec.LookPath("su"); err == nil {
		cases = append(cases, tc{"su - and env -i", v4,
			[]string{path, "HOME=/root"}, shell("su - root -c " + quote("env -i "+find)),
			netip.MustParseAddrPort("127.0.0.1:2222"), "(sshd)"})
	} else {
		t.Log("no su here: that case is skipped")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := sshpeertest.Run(t, ns, c.from, netip.AddrPortFrom(c.from, 2222), sshpeertest.Request{Env: c.env, Argv: c.argv})
			s := session(t, r)
			t.Logf("%+v", s)
			if s.Addr != c.want || !strings.Contains(s.From, c.via) || s.Lost() {
				t.Fatalf("got %+v, want %v via %s\nstderr: %s", s, c.want, c.via, r.Stderr)
			}
			if c.via == "(sshd)" && !strings.Contains(s.From, fmt.Sprintf("pid %d ", sshd.PID)) {
				t.Errorf("found through %q, want the fake sshd pid %d", s.From, sshd.PID)
			}
		})
	}

	t.Run("below an sshd without a connection: lost", func(t *testing.T) {
		r := sshpeertest.Exec(t, ns, sshpeertest.Request{Env: []string{path}, Argv: shell("env -i " + find)})
		s := session(t, r)
		if !s.Lost() || s.SSHD == 0 || !strings.Contains(s.Problem, "no established TCP connection") {
			t.Fatalf("got %+v, want a lost session", s)
		}
	})
	t.Run("no sshd", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", ns, "env", "-i", self, findArg).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if s := session(t, sshpeertest.Reply{Stdout: string(out)}); s.Found() || s.Lost() {
			t.Fatalf("got %+v, want nothing", s)
		}
	})
}
