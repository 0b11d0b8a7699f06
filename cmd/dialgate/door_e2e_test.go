package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall/fwtest"
)

// doorSetup starts a daemon with an account "alice" (SSH) whose passcode
// is known.
func doorSetup(t testing.TB) *e2e {
	t.Helper()
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.withStdin("48151623\n").ok("account", "passcode", "alice", "--stdin")
	return e
}

func (e *e2e) call(passcode, callerID string, from string, extra ...string) (string, int) {
	args := append([]string{"test-call", "--passcode", passcode, "--callerid", callerID, "--remote-addr", from}, extra...)
	out, errOut, code := e.run(args...)
	return out + errOut, code
}

func resultLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "DIALGATE_RESULT=") {
			return strings.TrimPrefix(l, "DIALGATE_RESULT=")
		}
	}
	return ""
}

// TestPhoneDoorGrantsTheCaller: the right passcode lets the calling
// channel's address in, for the account's services only; a wrong one
// leaves it out.
func TestPhoneDoorGrantsTheCaller(t *testing.T) {
	e := doorSetup(t)
	e.lab.Check(t, probe, ssh(false))
	out, code := e.call("11112222", "555", fwtest.OtherV4.String())
	if code == 0 || resultLine(out) != "denied" {
		t.Fatalf("wrong passcode: exit %d\n%s", code, out)
	}
	out, code = e.call("48151623", "555", fwtest.ClientV4.String())
	if code != 0 || resultLine(out) != "granted" || !strings.Contains(out, "SAY NUMBER 8") {
		t.Fatalf("right passcode: exit %d\n%s", code, out)
	}
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	gl := e.ok("grants", "list")
	if !strings.Contains(gl, fwtest.ClientV4.String()) || !strings.Contains(gl, "phone:channel") {
		t.Fatalf("grants list:\n%s", gl)
	}
	// An address the dialplan passes as the first AGI argument wins over
	// the channel's.
	if out, code := e.call("48151623", "555", fwtest.ClientV4.String(), "--arg", fwtest.ClientV6.String()); code != 0 {
		t.Fatalf("grant by argument: %s", out)
	}
	e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: true})
	e.ok("grants", "revoke", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(false))
	audit := e.audit()
	for _, want := range []string{"wrong passcode", "grant", "grant.revoke"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
	if strings.Contains(audit, "48151623") || strings.Contains(audit, "11112222") {
		t.Error("a passcode reached the audit log")
	}
}

// audit returns the whole audit log as the CLI prints it.
func (e *e2e) audit() string { return e.ok("audit", "--limit", "0") }

// TestPhoneDoorLockout: five wrong passcodes from one caller ID lock it,
// and then even the right passcode gets nothing.
func TestPhoneDoorLockout(t *testing.T) {
	e := doorSetup(t)
	for i := 1; i <= 5; i++ {
		out, _ := e.call("99990000", "666", fwtest.ClientV4.String())
		want := "denied"
		if i == 5 {
			want = "locked"
		}
		if got := resultLine(out); got != want {
			t.Fatalf("call %d: result %q, want %q\n%s", i, got, want, out)
		}
	}
	out, _ := e.call("48151623", "666", fwtest.ClientV4.String())
	if resultLine(out) != "locked" {
		t.Fatalf("locked caller got in:\n%s", out)
	}
	e.lab.Check(t, probe, ssh(false))
	// Another caller ID on another channel is not locked.
	out, code := e.call("48151623", "777", fwtest.ClientV4.String(), "--channel", "SIP/other-00000009")
	if code != 0 {
		t.Fatalf("other caller: %s", out)
	}
	e.lab.Check(t, probe, ssh(true))
}

// TestGrantExpiresWithoutTheDaemon: the kernel drops an expired grant by
// itself, even after the daemon was killed with SIGKILL.
func TestGrantExpiresWithoutTheDaemon(t *testing.T) {
	e := doorSetup(t)
	e.ok("account", "set", "alice", "--lifetime", "3s")
	if out, code := e.call("48151623", "555", fwtest.ClientV4.String()); code != 0 {
		t.Fatal(out)
	}
	e.lab.Check(t, probe, ssh(true))
	e.stopWith(9)
	time.Sleep(4 * time.Second)
	e.lab.Check(t, probe, ssh(false))
}

// TestRestartRestoresLiveGrant: a grant outlives a lost kernel state (the
// sets emptied, as after a reboot) because the daemon restores it from
// the store with its remaining life.
func TestRestartRestoresLiveGrant(t *testing.T) {
	e := doorSetup(t)
	if out, code := e.call("48151623", "555", fwtest.ClientV4.String()); code != 0 {
		t.Fatal(out)
	}
	e.stopWith(9)
	if _, err := e.lab.Exec(e.lab.Server, "ipset", "flush", "dialgate-8-v4"); err != nil {
		t.Fatal(err)
	}
	e.lab.Check(t, probe, ssh(false))
	e.startServe()
	e.lab.Check(t, probe, ssh(true))
	st := e.status()
	for _, s := range st.Firewall.Sets {
		if s.Name != "dialgate-8-v4" {
			continue
		}
		for _, m := range s.Entries {
			if m.Prefix.Addr() == fwtest.ClientV4 && (m.Timeout < 7*time.Hour || m.Timeout > 8*time.Hour) {
				t.Errorf("restored grant timeout %v, want its remaining life (~8h)", m.Timeout)
			}
		}
	}
}

// TestMetrics: the Prometheus endpoint (loopback only) counts the door's
// calls and grants and reads the kernel's set sizes.
func TestMetrics(t *testing.T) {
	e := newE2E(t)
	e.appendConfig("[metrics]\nlisten = \"127.0.0.1:9477\"\n")
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.withStdin("48151623\n").ok("account", "passcode", "alice", "--stdin")
	e.call("48151623", "555", fwtest.ClientV4.String())
	e.call("11112222", "556", fwtest.ClientV4.String())
	var body string
	// net/http dials on a goroutine of its own, outside the namespace:
	// dial here and speak HTTP/1.0 by hand.
	err := fwtest.Do(e.lab.Server, func() error {
		c, err := net.Dial("tcp", "127.0.0.1:9477")
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`dialgate_door_calls_total{result="granted"} 1`,
		`dialgate_door_calls_total{result="denied"} 1`,
		"dialgate_grants_issued_total 1",
		"dialgate_grants_active 1",
		`dialgate_set_members{set="dialgate-8-v4"} 1`,
		"dialgate_agi_sessions_total 2",
		`dialgate_apply_duration_seconds_count{kind="sync"}`,
		"dialgate_ami_connected 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	e2 := newE2E(t)
	e2.appendConfig("[metrics]\nlisten = \"0.0.0.0:9477\"\n")
	e2.fails(exitError, "loopback", "status")
}
