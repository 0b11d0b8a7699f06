package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// aliceNumber is the account number the door asks for alice's; the tests
// set it (`account passcode` would draw a random one).
const aliceNumber = "101"

// doorSetup starts a daemon with an account "alice" (SSH) whose passcode
// is known and whose account number is aliceNumber. conf is appended to
// the configuration first.
func doorSetup(t testing.TB, conf ...string) *e2e {
	t.Helper()
	e := newE2E(t)
	e.appendConfig(strings.Join(conf, ""))
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.passcode("alice", "48151623", aliceNumber)
	return e
}

// passcode sets an account's passcode and checks the account number the
// CLI says callers key before it.
func (e *e2e) passcode(account, code, wantNumber string) {
	e.t.Helper()
	// Numbers are random unless set: these tests name theirs.
	e.ok("account", "set", account, "--number", wantNumber)
	out := e.withStdin(code+"\n").ok("account", "passcode", account, "--stdin")
	if !strings.Contains(out, "account number "+wantNumber+":") {
		e.t.Fatalf("account passcode %s: want account number %s:\n%s", account, wantNumber, out)
	}
}

// call runs test-call, which keys passcode once (after the account
// number, when extra holds --account).
func (e *e2e) call(passcode, callerID string, from string, extra ...string) (string, int) {
	args := append([]string{"test-call", "--passcode", passcode, "--callerid", callerID, "--remote-addr", from}, extra...)
	out, errOut, code := e.run(args...)
	return out + errOut, code
}

// outcome is what test-call printed: DIALGATE_RESULT and DIALGATE_REASON.
func outcome(out string) (result, reason string) {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "DIALGATE_RESULT="); ok {
			result = v
		}
		if v, ok := strings.CutPrefix(l, "DIALGATE_REASON="); ok {
			reason = v
		}
	}
	return result, reason
}

// wantOutcome fails the test unless the call ended with result and
// reason.
func wantOutcome(t testing.TB, what, out, result, reason string) {
	t.Helper()
	if r, why := outcome(out); r != result || why != reason {
		t.Fatalf("%s: DIALGATE_RESULT=%s DIALGATE_REASON=%s, want %s %s\n%s", what, r, why, result, reason, out)
	}
}

// askedNumber tells whether the door asked the caller for an account
// number (sound agent-user).
func askedNumber(out string) bool { return strings.Contains(out, "GET DATA agent-user") }

// TestPhoneDoorGrantsTheCaller: a caller who keys alice's account number
// and the right passcode lets the calling channel's address in, for the
// account's services only; a wrong passcode leaves it out. A caller ID
// bound to alice skips the number.
func TestPhoneDoorGrantsTheCaller(t *testing.T) {
	e := doorSetup(t)
	e.lab.Check(t, probe, ssh(false))
	out, code := e.call("11112222", "555", fwtest.OtherV4.String(), "--account", aliceNumber)
	if code == 0 || !askedNumber(out) {
		t.Fatalf("wrong passcode: exit %d\n%s", code, out)
	}
	wantOutcome(t, "wrong passcode", out, "denied", "wrong-passcode")
	out, code = e.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber)
	if code != 0 || !askedNumber(out) || !strings.Contains(out, "SAY NUMBER 8") {
		t.Fatalf("right passcode: exit %d\n%s", code, out)
	}
	wantOutcome(t, "right passcode", out, "granted", "granted")
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	gl := e.ok("grants", "list")
	if !strings.Contains(gl, fwtest.ClientV4.String()) || !strings.Contains(gl, "phone:channel") {
		t.Fatalf("grants list:\n%s", gl)
	}
	// Bound to alice, caller ID 555 is asked no number. An address the
	// dialplan passes as the first AGI argument wins over the channel's.
	e.ok("account", "set", "alice", "--callerid", "555")
	out, code = e.call("48151623", "555", fwtest.ClientV4.String(), "--arg", fwtest.ClientV6.String())
	if code != 0 || askedNumber(out) {
		t.Fatalf("bound caller ID, grant by argument: exit %d\n%s", code, out)
	}
	e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: true})
	e.ok("grants", "revoke", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(false))
	audit := e.audit()
	for _, want := range []string{"grant", "grant.revoke"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
	// The refusal is on alice's record, with why and how she was
	// identified, and the length of what was keyed, not the digits.
	denied := e.ok("audit", "--account", "alice", "--action", "passcode", "--result", "denied")
	for _, want := range []string{"reason=wrong-passcode", `callerid="555"`, "identified=number", "wrong passcode (8 digits)"} {
		if !strings.Contains(denied, want) {
			t.Errorf("audit --account alice --action passcode --result denied lacks %q:\n%s", want, denied)
		}
	}
	granted := e.ok("audit", "--account", "alice", "--action", "door", "--result", "granted", "--since", "1h")
	for _, want := range []string{"reason=granted", "identified=number", "identified=callerid", "from channel", "from argument"} {
		if !strings.Contains(granted, want) {
			t.Errorf("audit of the grants lacks %q:\n%s", want, granted)
		}
	}
	if strings.Contains(audit, "48151623") || strings.Contains(audit, "11112222") {
		t.Error("a passcode reached the audit log")
	}
}

// audit returns the whole audit log as the CLI prints it.
func (e *e2e) audit() string { return e.ok("audit", "--limit", "0") }

// lockoutConf lifts the shared rate limit of callers who key an account
// number (60 a minute, 6 at once) above what a lockout test places, so
// that every refusal in it is the lockout's.
const lockoutConf = "[door]\nrate_per_minute = 600\nmax_checks_per_minute = 600\n"

// TestPhoneDoorLockout: five wrong passcodes from one caller ID lock it,
// and then even the right passcode gets nothing. The failures count
// against the caller ID and against alice's keyed number, not against
// alice's own phone (a bound caller ID); only an administrator or time
// reopens a lock, and a success clears nothing.
func TestPhoneDoorLockout(t *testing.T) {
	e := doorSetup(t, lockoutConf)
	e.ok("account", "set", "alice", "--callerid", "201")
	for i := 1; i <= 5; i++ {
		out, _ := e.call("99990000", "666", fwtest.ClientV4.String(), "--account", aliceNumber)
		if i < 5 {
			wantOutcome(t, fmt.Sprintf("wrong passcode %d", i), out, "denied", "wrong-passcode")
		} else {
			wantOutcome(t, "wrong passcode 5", out, "locked", "locked")
		}
	}
	out, _ := e.call("48151623", "666", fwtest.ClientV4.String(), "--account", aliceNumber)
	wantOutcome(t, "locked caller, right passcode", out, "locked", "locked")
	e.lab.Check(t, probe, ssh(false))
	// Another caller ID on another channel keying alice's number: the
	// number had its tries too.
	out, _ = e.call("48151623", "777", fwtest.ClientV4.String(), "--account", aliceNumber, "--channel", "SIP/other-00000009")
	wantOutcome(t, "another caller keying the locked number", out, "locked", "locked")
	e.lab.Check(t, probe, ssh(false))
	// Alice's own caller ID is counted apart: she gets in.
	out, code := e.call("48151623", "201", fwtest.ClientV4.String(), "--channel", "SIP/other-00000009")
	if code != 0 || askedNumber(out) {
		t.Fatalf("alice from her bound caller ID: exit %d\n%s", code, out)
	}
	e.lab.Check(t, probe, ssh(true))
	e.ok("grants", "revoke", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(false))

	ls := e.ok("lockouts", "list")
	for _, key := range []string{"cid:666", "num:" + aliceNumber} {
		if !lockedIn(ls, key) {
			t.Errorf("lockouts list: %s is not locked:\n%s", key, ls)
		}
	}
	for _, key := range []string{"cid:777", "cid:201", "bound:alice", "other", "traveler"} {
		if strings.Contains(ls, key) {
			t.Errorf("lockouts list holds %q:\n%s", key, ls)
		}
	}
	if locked := e.ok("audit", "--action", "door", "--result", "locked"); !strings.Contains(locked, "reason=locked") || !strings.Contains(locked, `callerid="777"`) {
		t.Errorf("audit --action door --result locked:\n%s", locked)
	}

	// Clearing alice's number reopens it, not the caller ID.
	if out := e.ok("lockouts", "clear", "num:"+aliceNumber); !strings.Contains(out, "num:"+aliceNumber+" cleared") {
		t.Fatalf("lockouts clear num:%s:\n%s", aliceNumber, out)
	}
	out, _ = e.call("48151623", "666", fwtest.ClientV4.String(), "--account", aliceNumber)
	wantOutcome(t, "caller ID still locked", out, "locked", "locked")
	out, _ = e.call("48151623", "777", fwtest.ClientV4.String(), "--account", aliceNumber)
	wantOutcome(t, "after lockouts clear num:"+aliceNumber, out, "granted", "granted")
	e.lab.Check(t, probe, ssh(true))
	e.ok("grants", "revoke", fwtest.ClientV4.String())

	// A success clears nothing: caller 888 fails twice, gets in, and is
	// locked by three more failures, five in all.
	e.ok("lockouts", "clear", "--all")
	for i := 1; i <= 2; i++ {
		out, _ = e.call("99990000", "888", fwtest.OtherV4.String(), "--account", aliceNumber)
		wantOutcome(t, fmt.Sprintf("888 wrong passcode %d", i), out, "denied", "wrong-passcode")
	}
	out, _ = e.call("48151623", "888", fwtest.OtherV4.String(), "--account", aliceNumber)
	wantOutcome(t, "888 right passcode", out, "granted", "granted")
	for i := 3; i <= 5; i++ {
		out, _ = e.call("99990000", "888", fwtest.OtherV4.String(), "--account", aliceNumber)
		if i < 5 {
			wantOutcome(t, fmt.Sprintf("888 wrong passcode %d", i), out, "denied", "wrong-passcode")
		} else {
			wantOutcome(t, "888 wrong passcode 5, after a success", out, "locked", "locked")
		}
	}
}

// lockedIn tells whether `lockouts list` shows key as locked (a date in
// the LOCKED UNTIL column, not "-").
func lockedIn(list, key string) bool {
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == key && f[2] != "-" {
			return true
		}
	}
	return false
}

// TestPhoneDoorTrunkCallersAreNotLockedTogether: callers who come in over
// one provider trunk share the channel's peer ("SIP/trunk-...",
// "PJSIP/trunk-..."). One of them guessing alice's passcode until locked
// must not lock out the others: another caller ID keying another
// account's number, and alice from her bound caller ID, get in through
// the same trunk, as the kernel shows.
func TestPhoneDoorTrunkCallersAreNotLockedTogether(t *testing.T) {
	e := doorSetup(t, lockoutConf)
	e.ok("account", "add", "bob", "--perms", "8")
	e.passcode("bob", "27182818", "102")
	e.ok("account", "set", "alice", "--callerid", "+15550201")
	for _, trunk := range []string{"SIP/trunk-00000012", "PJSIP/trunk-00000000"} {
		// Asterisk hands the caller's address over the way the channel
		// driver knows it (test-call only plays chan_sip's).
		call := func(what, number, passcode, callerID string, src netip.Addr, result, reason string) []string {
			t.Helper()
			c := agitest.Call{
				Script:    "authorize",
				Env:       map[string]string{"callerid": callerID, "channel": trunk},
				Digits:    []string{passcode + "#"},
				Variables: map[string]string{"CHANNEL(recvip)": src.String(), "CHANNEL(peerip)": src.String()},
			}
			if strings.HasPrefix(trunk, "PJSIP/") {
				c.Variables = map[string]string{"CHANNEL(pjsip,remote_addr)": netip.AddrPortFrom(src, 5060).String()}
			}
			if number != "" {
				c.Digits = append([]string{number + "#"}, c.Digits...)
			}
			tr, err := e.dial(c)
			if r, why := tr.Variables["DIALGATE_RESULT"], tr.Variables["DIALGATE_REASON"]; err != nil || r != result || why != reason {
				t.Fatalf("%s, %s: %v, DIALGATE_RESULT=%s DIALGATE_REASON=%s, want %s %s\n%s", trunk, what, err, r, why, result, reason, strings.Join(tr.Commands, "\n"))
			}
			return tr.Commands
		}
		e.lab.Check(t, probe, ssh(false), from(fwtest.OtherV4, false))
		// The guesser, from OtherV4: five wrong passcodes for alice's
		// number lock caller ID +15550666 (and alice's number).
		for i := 1; i <= 4; i++ {
			call(fmt.Sprintf("guess %d", i), aliceNumber, "99990000", "+15550666", fwtest.OtherV4, "denied", "wrong-passcode")
		}
		call("guess 5", aliceNumber, "99990000", "+15550666", fwtest.OtherV4, "locked", "locked")
		call("the locked guesser keys the right passcode", aliceNumber, "48151623", "+15550666", fwtest.OtherV4, "locked", "locked")
		e.lab.Check(t, probe, ssh(false), from(fwtest.OtherV4, false))

		// Bob, another caller ID on the same trunk, keys his number.
		call("bob", "102", "27182818", "+15550102", fwtest.ClientV4, "granted", "granted")
		e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
		e.ok("grants", "revoke", fwtest.ClientV4.String())
		e.lab.Check(t, probe, ssh(false))

		// Alice, from her bound caller ID on the same trunk: no number.
		if cmds := call("alice", "", "48151623", "+15550201", fwtest.ClientV4, "granted", "granted"); askedNumber(strings.Join(cmds, "\n")) {
			t.Fatalf("%s: a bound caller ID was asked for a number: %q", trunk, cmds)
		}
		e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))

		// The locks are the guesser's caller ID and alice's keyed number;
		// nothing names the trunk.
		ls := e.ok("lockouts", "list")
		if !lockedIn(ls, "cid:+15550666") || !lockedIn(ls, "num:"+aliceNumber) {
			t.Errorf("%s: lockouts list:\n%s", trunk, ls)
		}
		for _, no := range []string{"trunk", "bob", "bound:alice", "+15550102", "+15550201"} {
			if strings.Contains(ls, no) {
				t.Errorf("%s: lockouts list holds %q:\n%s", trunk, no, ls)
			}
		}
		e.ok("grants", "revoke", fwtest.ClientV4.String())
		e.ok("lockouts", "clear", "--all")
	}
	e.lab.Check(t, probe, ssh(false), from(fwtest.OtherV4, false))
}

// TestGrantExpiresWithoutTheDaemon: the kernel drops an expired grant by
// itself, even after the daemon was killed with SIGKILL.
func TestGrantExpiresWithoutTheDaemon(t *testing.T) {
	e := doorSetup(t)
	e.ok("account", "set", "alice", "--lifetime", "3s")
	if out, code := e.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber); code != 0 {
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
	e.ok("account", "set", "alice", "--callerid", "555")
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
	e.passcode("alice", "48151623", aliceNumber)
	e.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber)
	e.call("11112222", "556", fwtest.ClientV4.String(), "--account", aliceNumber)
	body, err := httpGet(e, "127.0.0.1:9477")
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
