package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

const agiAddr = "127.0.0.1:4573"

// dial plays one call from inside the server namespace, where the door
// listens on loopback.
func (e *e2e) dial(call agitest.Call) (tr agitest.Transcript, err error) {
	derr := fwtest.Do(e.lab.Server, func() error {
		// Generous: a crowd of callers queues for the passcode check.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tr, err = agitest.Dial(ctx, agiAddr, call)
		return nil
	})
	if derr != nil {
		return tr, derr
	}
	return tr, err
}

// sipCall is a call from SIP endpoint callerID (no account's extension)
// that keys alice's account number and then passcode, up to three times.
func sipCall(passcode, callerID string, from fmt.Stringer) agitest.Call {
	return agitest.Call{
		Script:    "authorize",
		Env:       map[string]string{"callerid": callerID, "channel": "SIP/" + callerID + "-0000002a"},
		Digits:    []string{aliceNumber + "#", passcode + "#", passcode + "#", passcode + "#"},
		Variables: map[string]string{"CHANNEL(recvip)": from.String()},
	}
}

// TestDoorCallerHangsUpAtEachStep: wherever the caller hangs up, the
// session ends cleanly; before the passcode is accepted nothing is
// granted, and the daemon keeps serving.
func TestDoorCallerHangsUpAtEachStep(t *testing.T) {
	e := doorSetup(t)
	full, err := e.dial(sipCall("48151623", "300", fwtest.ClientV4))
	if err != nil || full.Variables["DIALGATE_RESULT"] != "granted" {
		t.Fatalf("baseline call: %v %v", err, full.Variables)
	}
	if len(full.Commands) < 3 || !strings.HasPrefix(full.Commands[1], "GET DATA agent-user") || !strings.HasPrefix(full.Commands[2], "GET DATA agent-pass") {
		t.Fatalf("the door should ask for the account number, then the passcode: %q", full.Commands)
	}
	e.ok("grants", "revoke", fwtest.ClientV4.String())
	for n := 1; n <= len(full.Commands); n++ {
		call := sipCall("48151623", "300", fwtest.ClientV4)
		call.HangupAfter = n
		tr, err := e.dial(call)
		if err != nil {
			t.Fatalf("hangup at command %d: %v", n, err)
		}
		// The passcode is checked after command 3 (ANSWER, GET DATA for the
		// account number, GET DATA for the passcode); from there on a grant
		// may already be made, and must then be real.
		granted := strings.Contains(e.ok("grants", "list"), fwtest.ClientV4.String())
		if n <= 3 && granted {
			t.Fatalf("hangup at command %d (%s) still granted", n, tr.Commands)
		}
		if granted {
			e.ok("grants", "revoke", fwtest.ClientV4.String())
		}
	}
	if _, err := e.dial(sipCall("48151623", "300", fwtest.ClientV4)); err != nil {
		t.Fatalf("daemon unwell after hangups: %v", err)
	}
}

// TestDoorGarbage sends what is not FastAGI: each connection is closed,
// the daemon keeps serving, nothing is granted.
func TestDoorGarbage(t *testing.T) {
	e := doorSetup(t)
	inputs := map[string]string{
		"garbage":   "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"binary":    "\x00\x01\x02\xff\xfe\n\n",
		"huge line": "agi_request: " + strings.Repeat("A", 1<<20) + "\n",
		"no end":    "agi_request: agi://127.0.0.1/authorize\n",
	}
	for name, in := range inputs {
		err := fwtest.Do(e.lab.Server, func() error {
			c, err := net.Dial("tcp", agiAddr)
			if err != nil {
				return err
			}
			defer c.Close()
			go c.Write([]byte(in))
			if name == "no end" {
				// Half an env block and silence: the server's read deadline
				// (30 s) would cut it; here we only check it does not block
				// others.
				return nil
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadAll(c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return fmt.Errorf("%s: connection left open", name)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	tr, err := e.dial(sipCall("48151623", "301", fwtest.ClientV4))
	if err != nil || tr.Variables["DIALGATE_RESULT"] != "granted" {
		t.Fatalf("door broken after garbage: %v %v", err, tr.Variables)
	}
}

// TestDoorKeyedIP: an account allowed to key an address keys one with '*'
// for dots, hears it read back and confirms with '#'. A keyed address
// is validated like any entry.
func TestDoorKeyedIP(t *testing.T) {
	e := doorSetup(t)
	e.ok("account", "set", "alice", "--may-key-ip")
	for _, c := range []struct {
		keyed, want string
	}{
		{"0*0*0*0", "denied"},
		{"224*0*0*1", "denied"},
		{"10*1*2*3", "lan"}, // LAN: already admitted, a grant would mean nothing
		{strings.ReplaceAll(fwtest.ClientV4.String(), ".", "*"), "granted"},
	} {
		call := sipCall("48151623", "302", fwtest.ClientV4)
		call.Variables = nil // no channel address: the door must ask
		call.Digits = []string{aliceNumber + "#", "48151623#", c.keyed + "#"}
		call.WaitDigits = []rune{'#'}
		tr, err := e.dial(call)
		if err != nil || tr.Variables["DIALGATE_RESULT"] != c.want {
			t.Errorf("keyed %s: %v, result %q, want %q\n%s", c.keyed, err, tr.Variables["DIALGATE_RESULT"], c.want, strings.Join(tr.Commands, "\n"))
		}
	}
	e.lab.Check(t, probe, ssh(true))
	if gl := e.ok("grants", "list"); strings.Contains(gl, "10.1.2.3") || strings.Contains(gl, "224.0.0.1") {
		t.Errorf("a refused keyed address was granted:\n%s", gl)
	}
}

// TestDoorTenThousandWrongPasscodes: a flood of wrong passcodes from
// many caller IDs, a third keying alice's account number and the rest
// numbers nobody has. Every call ends cleanly with a refusal and an audit
// record; nothing is granted; the lockouts and the shared rate limit of
// callers who key a number keep the expensive hash checks to a handful:
// at most the rate's burst plus one a second, and no more than five
// against alice (the rate limit usually refuses before her lock does).
func TestDoorTenThousandWrongPasscodes(t *testing.T) {
	e := doorSetup(t)
	const calls, workers = 10000, 16
	var next atomic.Int64
	var mu sync.Mutex
	results := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fwtest.Do(e.lab.Server, func() error {
				for {
					i := next.Add(1)
					if i > calls {
						return nil
					}
					call := sipCall(fmt.Sprintf("%08d", i), fmt.Sprintf("5550%03d", i%97), fwtest.ClientV4)
					call.Digits = call.Digits[:2]
					if i%3 != 0 {
						call.Digits[0] = fmt.Sprintf("%d#", 500+i%400) // no such account
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					tr, err := agitest.Dial(ctx, agiAddr, call)
					cancel()
					r := tr.Variables["DIALGATE_RESULT"]
					if err != nil {
						r = "error: " + err.Error()
					}
					mu.Lock()
					results[r]++
					mu.Unlock()
				}
			})
		}()
	}
	wg.Wait()
	took := time.Since(start)
	t.Logf("%d wrong-passcode calls in %v: %v", calls, took.Round(time.Millisecond), results)
	if results["denied"]+results["locked"] != calls {
		t.Fatalf("every call must end denied or locked: %v", results)
	}
	if gl := e.ok("grants", "list"); strings.Contains(gl, fwtest.ClientV4.String()) {
		t.Fatalf("a wrong passcode was granted:\n%s", gl)
	}
	e.lab.Check(t, probe, ssh(false))
	out := e.ok("audit", "--limit", "0", "--json")
	if n := strings.Count(out, `"action": "passcode"`) + strings.Count(out, `"action": "door"`); n < calls {
		t.Fatalf("%d audit records for %d refused calls", n, calls)
	}
	// Each "wrong passcode (N digits)" record is one argon2id check (of a
	// known account or the dummy hash); the shared bucket of callers who
	// key a number holds 6 and refills one a second.
	checks := strings.Count(out, "wrong passcode (")
	if limit := 6 + int(took.Seconds()) + 2; checks == 0 || checks > limit {
		t.Fatalf("%d passcode checks in %v, want 1 to %d", checks, took, limit)
	}
	alice := e.ok("audit", "--limit", "0", "--account", "alice", "--action", "passcode", "--result", "denied")
	if n := strings.Count(alice, "wrong passcode ("); n > 5 {
		t.Errorf("%d wrong passcodes checked against alice, want at most max_failures (5)", n)
	}
	t.Logf("%d passcode checks, %d against alice", checks, strings.Count(alice, "wrong passcode ("))
}
