package door

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/agi/agitest"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/dialplan"
	"github.com/dialgate/dialgate/store"
)

const (
	alicePass = "48151623"
	bobPass   = "27182818"
	wrongPass = "99990000"
	traveler  = "203.0.113.7"
)

func TestOutcomes(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(h *harness)
		call     agitest.Call
		want     string // result/reason
		checks   int64  // argon2id checks made
		grantTo  string // the address granted, if any
		grantSrc string
	}{
		{name: "account number then passcode",
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#"),
			want: "granted/granted", checks: 1, grantTo: traveler, grantSrc: "phone:channel"},
		{name: "bound caller ID needs no number",
			setup: func(h *harness) {
				h.account("bob", "102", bobPass, func(a *store.Account) { a.CallerIDs = []string{"+15551234567"} })
			},
			call: sip("PJSIP/trunk-00000000", "+15551234567", traveler, bobPass+"#"),
			want: "granted/granted", checks: 1, grantTo: traveler},
		{name: "own extension needs no number",
			setup: func(h *harness) {
				h.account("carol", "103", bobPass, func(a *store.Account) { a.Extension = "201" })
			},
			call: sip("PJSIP/201-00000003", "201", "198.51.100.9", bobPass+"#"),
			want: "granted/granted", checks: 1, grantTo: "198.51.100.9"},
		{name: "same passcode on two accounts is not ambiguous",
			setup: func(h *harness) { h.account("bob", "102", alicePass) },
			call:  sip("SIP/traveler-0000001f", "555", traveler, "102#", alicePass+"#"),
			want:  "granted/granted", checks: 1, grantTo: traveler},
		{name: "wrong passcode three times",
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#", wrongPass+"#", wrongPass+"#", wrongPass+"#"),
			want: "denied/wrong-passcode", checks: 3},
		{name: "right passcode on the second try",
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#", wrongPass+"#", alicePass+"#"),
			want: "granted/granted", checks: 2, grantTo: traveler},
		{name: "unknown number is checked against the dummy hash",
			call: sip("SIP/traveler-0000001f", "555", traveler, "999#", alicePass+"#", alicePass+"#", alicePass+"#"),
			want: "denied/wrong-passcode", checks: 3},
		{name: "nothing keyed",
			call: sip("SIP/traveler-0000001f", "555", traveler),
			want: "denied/no-passcode", checks: 0},
		{name: "number but no passcode",
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#"),
			want: "denied/no-passcode", checks: 0},
		{name: "disabled account",
			setup: func(h *harness) { h.account("alice", "101", alicePass, func(a *store.Account) { a.Enabled = false }) },
			call:  sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#", alicePass+"#", alicePass+"#"),
			want:  "denied/wrong-passcode", checks: 3},
		{name: "LAN phone is already admitted",
			setup: func(h *harness) {
				h.grantErr = func(GrantRequest) error { return fmt.Errorf("%w: 192.168.1.5 is in the LAN range", ErrAdmitted) }
			},
			call: sip("SIP/201-00000001", "201", "192.168.1.5", "101#", alicePass+"#"),
			want: "lan/already-admitted", checks: 1},
		{name: "address that cannot be granted",
			setup: func(h *harness) {
				h.grantErr = func(GrantRequest) error { return fmt.Errorf("%w: own address", auth.ErrNotGrantable) }
			},
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#"),
			want: "denied/not-grantable", checks: 1},
		{name: "grant machinery fails",
			setup: func(h *harness) {
				h.grantErr = func(GrantRequest) error { return errors.New("ipset: no such set") }
			},
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#"),
			want: "error/grant-failed", checks: 1},
		{name: "no address for the caller",
			call: agitest.Call{Script: "authorize", Env: map[string]string{"channel": "Local/s@door-00000000;1", "callerid": "555"},
				Digits: []string{"101#", alicePass + "#"}},
			want: "denied/no-address", checks: 1},
		{name: "locked caller ID hears locked before keying",
			setup: func(h *harness) { h.lock("cid:555", time.Hour) },
			call:  sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#"),
			want:  "locked/locked", checks: 0},
		{name: "malformed stored hash is an error",
			setup: func(h *harness) {
				h.account("alice", "101", "", func(a *store.Account) { a.PasscodeHash = "$argon2id$v=19$m=1,t=1,p=1$x$y" })
			},
			call: sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#"),
			want: "error/store-error", checks: 1},
		{name: "dialplan argument wins",
			call: func() agitest.Call {
				c := sip("SIP/traveler-0000001f", "555", traveler, "101#", alicePass+"#")
				c.Args = []string{"[2001:db8::7]:5060"}
				return c
			}(),
			want: "granted/granted", checks: 1, grantTo: "2001:db8::7", grantSrc: "phone:argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.account("alice", "101", alicePass)
			if tc.setup != nil {
				tc.setup(h)
			}
			tr := h.call(tc.call)
			if got := outcome(tr); got != tc.want {
				t.Errorf("outcome %s, want %s\n%s\n%s", got, tc.want, strings.Join(tr.Commands, "\n"), h.auditText())
			}
			if got := h.checks.Load(); got != tc.checks {
				t.Errorf("%d argon2id checks, want %d", got, tc.checks)
			}
			gs := h.granted()
			switch {
			case tc.grantTo == "" && len(gs) > 0 && tc.want != "lan/already-admitted":
				t.Errorf("granted %v", gs)
			case tc.grantTo != "" && (len(gs) != 1 || gs[0].IP.String() != tc.grantTo):
				t.Errorf("granted %v, want %s", gs, tc.grantTo)
			case tc.grantSrc != "" && gs[0].Source != tc.grantSrc:
				t.Errorf("grant source %q, want %q", gs[0].Source, tc.grantSrc)
			}
			for _, c := range tr.Commands {
				if strings.HasPrefix(c, "HANGUP") {
					t.Errorf("the door sent %q: the dialplan hangs up", c)
				}
			}
			// Every call leaves one "door" audit record with its result.
			result, _, _ := strings.Cut(tc.want, "/")
			if !regexp.MustCompile(`(?m)^door .* ` + result + ` reason=`).MatchString(h.auditText()) {
				t.Errorf("no door audit record with result %s:\n%s", result, h.auditText())
			}
			if strings.Contains(h.auditText(), alicePass) || strings.Contains(h.auditText(), wrongPass) {
				t.Error("keyed digits reached the audit log")
			}
		})
	}
}

// A malformed hash is an error, and it still costs the caller a try:
// errors that skipped the count would be free guesses.
func TestErrorsCountAsFailures(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", "", func(a *store.Account) { a.PasscodeHash = "$argon2id$v=19$m=1,t=1,p=1$x$y" })
	h.setConfig(func(c *Config) { c.MaxFailures = 2 })
	for i := 0; i < 2; i++ {
		if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))); got != "error/store-error" {
			t.Fatalf("call %d: %s", i, got)
		}
	}
	if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))); got != "locked/locked" {
		t.Fatalf("after two errors: %s, want locked", got)
	}
}

func TestHangupAtEachStep(t *testing.T) {
	// A full granted call with a keyed address has the most steps.
	base := sip("Local/s@door-00000000;1", "555", "", "101#", alicePass+"#", "203*0*113*1#")
	base.Variables = nil
	h := newHarness(t)
	h.account("alice", "101", alicePass, func(a *store.Account) { a.MayKeyIP = true })
	full := h.call(base)
	if got := outcome(full); got != "granted/granted" {
		t.Fatalf("baseline call: %s\n%s", got, strings.Join(full.Commands, "\n"))
	}
	grantAt := slices.IndexFunc(full.Commands, func(c string) bool { return strings.HasPrefix(c, "WAIT FOR DIGIT") }) + 1
	for n := 1; n <= len(full.Commands); n++ {
		h := newHarness(t)
		h.account("alice", "101", alicePass, func(a *store.Account) { a.MayKeyIP = true })
		c := base
		c.HangupAfter = n
		tr := h.call(c)
		want := "hangup/hangup"
		if n > grantAt {
			want = "granted/granted" // hung up while hearing the lifetime
		}
		if got := outcome(tr); got != want {
			t.Errorf("hangup during command %d (%s): %s, want %s", n, full.Commands[n-1], got, want)
		}
		if h.ended["denied"] != 0 {
			t.Errorf("hangup during command %d counted as denied", n)
		}
		if strings.Contains(h.auditText(), "wrong-passcode") {
			t.Errorf("hangup during command %d counted as a wrong passcode:\n%s", n, h.auditText())
		}
	}
}

// Fifty parallel calls from one caller ID with a wrong passcode get
// max_failures checks between them, not one per call.
func TestLockoutRaceParallelCalls(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", alicePass)
	h.setConfig(func(c *Config) { c.Tries = 1; c.RatePerMinute = 1000; c.MaxChecksPerMinute = 1000 })
	counts := map[string]int{}
	for _, r := range h.parallel(50, func(i int) agitest.Call {
		return sip(fmt.Sprintf("SIP/trunk-%08x", i), "666", traveler, "101#", wrongPass+"#")
	}) {
		counts[r]++
	}
	if got := h.checks.Load(); got != 5 {
		t.Errorf("%d argon2id checks for 50 parallel wrong calls, want max_failures = 5 (%v)", got, counts)
	}
	if got := outcome(h.call(sip("SIP/trunk-00000099", "666", traveler, "101#", alicePass+"#"))); got != "locked/locked" {
		t.Errorf("right passcode after the race: %s, want locked", got)
	}
}

// A lock set by another call while this one is checking holds at the
// next try, and a success never clears it.
func TestLockSetDuringCall(t *testing.T) {
	t.Run("wrong try, then locked", func(t *testing.T) {
		h := newHarness(t)
		h.account("alice", "101", alicePass)
		verify := h.door.verify
		var once sync.Once
		h.door.verify = func(code, phc string) (bool, error) {
			once.Do(func() { h.lock("cid:555", time.Hour) })
			return verify(code, phc)
		}
		tr := h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", wrongPass+"#", alicePass+"#"))
		if got := outcome(tr); got != "locked/locked" {
			t.Errorf("second try after a lock set mid-call: %s, want locked", got)
		}
		if len(h.granted()) != 0 {
			t.Error("granted after the lock")
		}
	})
	t.Run("success keeps the lock", func(t *testing.T) {
		h := newHarness(t)
		h.account("alice", "101", alicePass)
		verify := h.door.verify
		h.door.verify = func(code, phc string) (bool, error) {
			h.lock("cid:555", time.Hour)
			return verify(code, phc)
		}
		if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))); got != "granted/granted" {
			t.Fatalf("reserved try: %s", got)
		}
		h.door.verify = verify
		if got := outcome(h.call(sip("SIP/trunk-00000002", "555", traveler, "101#", alicePass+"#"))); got != "locked/locked" {
			t.Errorf("next call: %s; the success cleared a lock set during it", got)
		}
	})
	t.Run("success keeps earlier failures", func(t *testing.T) {
		h := newHarness(t)
		h.account("alice", "101", alicePass)
		h.setConfig(func(c *Config) { c.Tries = 1 })
		for i := 0; i < 4; i++ {
			h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", wrongPass+"#"))
		}
		if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))); got != "granted/granted" {
			t.Fatalf("fifth call, right passcode: %s", got)
		}
		if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", wrongPass+"#"))); got != "locked/locked" {
			t.Errorf("one more wrong passcode after a success: %s, want locked (failures must age out, not be cleared)", got)
		}
	})
}

// Five wrong passcodes from one caller through a provider trunk lock that
// caller and the account guessed at, not every traveler on the trunk.
func TestTrunkCallersAreNotLockedTogether(t *testing.T) {
	for _, trunk := range []string{"SIP/trunk-%08x", "PJSIP/trunk-%08x", "Local/s@from-trunk-%08x;1"} {
		t.Run(strings.Split(trunk, "/")[0], func(t *testing.T) {
			h := newHarness(t)
			h.account("alice", "101", alicePass, func(a *store.Account) { a.CallerIDs = []string{"+15550000001"} })
			h.account("bob", "102", bobPass)
			h.setConfig(func(c *Config) { c.Tries = 1 })
			for i := 0; i < 5; i++ {
				h.call(sip(fmt.Sprintf(trunk, i), "+15550000666", traveler, "101#", wrongPass+"#"))
			}
			if got := outcome(h.call(sip(fmt.Sprintf(trunk, 10), "+15550000666", traveler, "101#", alicePass+"#"))); got != "locked/locked" {
				t.Errorf("the guesser: %s, want locked", got)
			}
			if got := outcome(h.call(sip(fmt.Sprintf(trunk, 11), "+15550000002", traveler, "102#", bobPass+"#"))); got != "granted/granted" {
				t.Errorf("another traveler on the same trunk: %s, want granted\n%s", got, h.auditText())
			}
			if got := outcome(h.call(sip(fmt.Sprintf(trunk, 12), "+15550000001", traveler, alicePass+"#"))); got != "granted/granted" {
				t.Errorf("alice from her bound caller ID: %s, want granted", got)
			}
		})
	}
}

// A stream of wrong calls from invented caller IDs empties the shared
// bucket, not the buckets of callers whose identity is bound.
func TestFloodDoesNotDenyBoundCallers(t *testing.T) {
	h := newHarness(t)
	const bound = 20
	for i := 0; i < bound; i++ {
		h.account(fmt.Sprintf("user%02d", i), fmt.Sprint(200+i), alicePass, func(a *store.Account) {
			a.CallerIDs = []string{fmt.Sprintf("+1555100%04d", i)}
		})
	}
	h.setConfig(func(c *Config) { c.Tries = 1 })
	// 1 000 wrong calls and 100 right ones in one minute of the clock.
	granted, total := 0, 0
	for i := 0; i < 1100; i++ {
		h.clock.Advance(time.Minute / 1100)
		if i%11 == 10 {
			n := total % bound
			total++
			if outcome(h.call(sip("PJSIP/trunk-00000001", fmt.Sprintf("+1555100%04d", n), traveler, alicePass+"#"))) == "granted/granted" {
				granted++
			}
			continue
		}
		h.call(sip("PJSIP/trunk-00000001", fmt.Sprintf("+1666%07d", i), traveler, fmt.Sprint(200+i%bound)+"#", wrongPass+"#"))
	}
	if granted*100 < total*99 {
		t.Errorf("%d of %d bound callers granted during the flood, want >= 99%%", granted, total)
	}
	// The flood was held to the shared rate: one minute's worth plus burst.
	if got := h.checks.Load(); got > int64(total)+60+10 {
		t.Errorf("%d checks: the flood was not rate limited", got)
	}
}

// At 10 000 accounts a call still costs one check.
func TestTenThousandAccounts(t *testing.T) {
	h := newHarness(t)
	hash := hashOf(t, alicePass)
	err := h.db.Update(func(tx store.Tx) error {
		for i := 0; i < 10000; i++ {
			a := store.Account{Name: fmt.Sprintf("u%05d", i), Perms: store.NewPermSet(1), Enabled: true,
				Number: fmt.Sprint(10000 + i), PasscodeHash: hash, CallerIDs: []string{fmt.Sprintf("+4930%07d", i)}}
			if err := tx.PutAccount(a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		call agitest.Call
		want string
	}{
		{"by number", sip("SIP/trunk-00000001", "555", traveler, "19999#", alicePass+"#"), "granted/granted"},
		{"by caller ID", sip("SIP/trunk-00000002", "+49300009999", traveler, alicePass+"#"), "granted/granted"},
		{"wrong", sip("SIP/trunk-00000003", "556", traveler, "15000#", wrongPass+"#"), ""},
	} {
		before := h.checks.Load()
		tr := h.call(c.call)
		if c.want != "" && outcome(tr) != c.want {
			t.Errorf("%s: %s", c.name, outcome(tr))
		}
		if n := h.checks.Load() - before; c.want != "" && n != 1 {
			t.Errorf("%s: %d checks, want 1", c.name, n)
		}
	}
}

func TestRateLimits(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", alicePass, func(a *store.Account) { a.CallerIDs = []string{"555"} })
	h.setConfig(func(c *Config) { c.Tries = 1; c.IdentityRatePerMinute = 1; c.MaxFailures = 100 })
	if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, wrongPass+"#"))); got != "denied/wrong-passcode" {
		t.Fatalf("first: %s", got)
	}
	if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, alicePass+"#"))); got != "denied/rate-limited" {
		t.Fatalf("second within the minute: %s, want rate-limited", got)
	}
	h.clock.Advance(time.Minute)
	if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, alicePass+"#"))); got != "granted/granted" {
		t.Fatalf("a minute later: %s", got)
	}
	// A reload that changes the rates applies to the next call.
	h.setConfig(func(c *Config) { c.MaxChecksPerMinute = 1; c.RatePerMinute = 1; c.IdentityRatePerMinute = 1 })
	h.call(sip("SIP/trunk-00000001", "777", traveler, "101#", wrongPass+"#"))
	if got := outcome(h.call(sip("SIP/trunk-00000001", "778", traveler, "101#", wrongPass+"#"))); got != "denied/rate-limited" {
		t.Fatalf("after lowering the rates: %s", got)
	}
}

func TestKeyedAddressReadBackWithDots(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", alicePass, func(a *store.Account) { a.MayKeyIP = true })
	c := sip("Local/s@door-00000000;1", "555", "", "101#", alicePass+"#", "20*30*11*31#")
	c.Variables = nil
	tr := h.call(c)
	if got := outcome(tr); got != "granted/granted" {
		t.Fatalf("%s\n%s", got, strings.Join(tr.Commands, "\n"))
	}
	var said []string
	for _, cmd := range tr.Commands {
		if f := strings.Fields(cmd); len(f) > 2 && (f[0] == "SAY" || f[0] == "STREAM") {
			said = append(said, strings.Trim(f[2], `"`))
		}
	}
	want := "you-entered 20 letters/dot 30 letters/dot 11 letters/dot 31"
	if got := strings.Join(said, " "); !strings.Contains(got, want) {
		t.Errorf("read back %q, want it to contain %q", got, want)
	}
	if gs := h.granted(); len(gs) != 1 || gs[0].IP.String() != "20.30.11.31" || gs[0].Source != "phone:keyed" {
		t.Errorf("granted %v", gs)
	}
}

func TestSpokenDuration(t *testing.T) {
	s := DefaultSounds
	cases := map[time.Duration]string{
		8 * time.Hour:                     "8 hours",
		5*time.Hour + 30*time.Minute:      "5 hours vm-and 30 minutes",
		2*time.Hour + 1*time.Minute:       "2 hours vm-and 1 minute",
		90 * time.Minute:                  "90 minutes",
		time.Hour:                         "60 minutes",
		45 * time.Minute:                  "45 minutes",
		time.Minute:                       "1 minute",
		10 * time.Second:                  "1 minute",
		7*time.Hour + 59*time.Minute + 50: "7 hours vm-and 59 minutes",
	}
	for d, want := range cases {
		var words []string
		for _, p := range spokenDuration(d, s) {
			if p.number >= 0 {
				words = append(words, fmt.Sprint(p.number))
			} else {
				words = append(words, p.sound)
			}
		}
		if got := strings.Join(words, " "); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}

// coreSounds reads the list of sounds in asterisk-core-sounds-en.
func coreSounds(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "core-sounds-en.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out[l] = true
		}
	}
	return out
}

// Every sound the door or the generated dialplan plays by default is an
// Asterisk core sound: anything else is silence on a stock server.
func TestDefaultSoundsAreCoreSounds(t *testing.T) {
	core := coreSounds(t)
	if len(core) < 500 {
		t.Fatalf("core sounds list has %d entries", len(core))
	}
	var names []string
	s := DefaultSounds
	names = append(names, s.AccountPrompt, s.Prompt, s.Incorrect, s.Denied, s.IPPrompt, s.YouEntered, s.Dot,
		s.Granted, s.Hours, s.Minutes, s.Minute, s.And, s.Admitted, s.Locked, s.Failed)
	plan, err := dialplan.Generate(dialplan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`Playback\(([^)]*)\)`).FindAllStringSubmatch(plan, -1) {
		names = append(names, strings.Split(m[1], "&")...)
	}
	for _, n := range names {
		if !core[n] {
			t.Errorf("default sound %q is not an Asterisk core sound", n)
		}
	}
	// The list itself is checked against the installed package, which CI
	// installs (asterisk-core-sounds-en-gsm).
	dir := ""
	for _, d := range []string{"/usr/share/asterisk/sounds/en_US_f_Allison", "/usr/share/asterisk/sounds/en"} {
		if _, err := os.Stat(filepath.Join(d, "agent-pass.gsm")); err == nil {
			dir = d
			break
		}
	}
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("asterisk-core-sounds-en-gsm is not installed (CI installs it)")
		}
		t.Skip("asterisk-core-sounds-en-gsm not installed: apt-get install asterisk-core-sounds-en-gsm")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n+".gsm")); err != nil {
			t.Errorf("default sound %q: not in the installed core sounds: %v", n, err)
		}
	}
}

func TestEndpointOf(t *testing.T) {
	cases := map[string]string{
		"SIP/201-0000001f":           "201",
		"PJSIP/201-00000003":         "201",
		"PJSIP/alice-phone-0000000a": "alice-phone",
		"IAX2/201-1234":              "201",
		"SIP/trunk-00000012":         "trunk",
		"Local/s@ctx-00000000;1":     "",
		"DAHDI/1-1":                  "",
		"":                           "",
		"SIP/":                       "",
	}
	for in, want := range cases {
		if got := endpointOf(in); got != want {
			t.Errorf("endpointOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// More parallel callers with the right passcode than an account has tries
// left all get in: tries in flight are waited for, not taken as a lock.
func TestParallelRightCallsAreNotLocked(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", alicePass)
	h.setConfig(func(c *Config) { c.Tries = 1; c.RatePerMinute = 1000; c.MaxChecksPerMinute = 1000 })
	for _, r := range h.parallel(20, func(i int) agitest.Call {
		return sip(fmt.Sprintf("SIP/trunk-%08x", i), fmt.Sprintf("55500%02d", i), traveler, "101#", alicePass+"#")
	}) {
		if r != "granted/granted" {
			t.Errorf("parallel right call: %s", r)
		}
	}
}

// A caller ID bound to an account that cannot be used does not trap the
// caller: the door asks for an account number.
func TestUnusableBoundCallerIDFallsBackToNumber(t *testing.T) {
	h := newHarness(t)
	h.account("old", "100", alicePass, func(a *store.Account) { a.Enabled = false; a.CallerIDs = []string{"555"} })
	h.account("alice", "101", alicePass)
	tr := h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))
	if got := outcome(tr); got != "granted/granted" {
		t.Errorf("%s\n%s", got, strings.Join(tr.Commands, "\n"))
	}
}

// A number nobody has locks after max_failures just as a real one does:
// "locked" must not tell a guesser which numbers exist.
func TestUnknownNumbersLockLikeKnownOnes(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", alicePass)
	h.setConfig(func(c *Config) { c.Tries = 1; c.RatePerMinute = 1000; c.MaxChecksPerMinute = 1000 })
	for _, number := range []string{"101", "999"} {
		var got []string
		for i := 0; i < 6; i++ {
			// A new caller ID each time: only the number's key counts.
			got = append(got, outcome(h.call(sip("SIP/trunk-00000001", fmt.Sprintf("+1555%s%04d", number, i), traveler, number+"#", wrongPass+"#"))))
		}
		want := "denied/wrong-passcode denied/wrong-passcode denied/wrong-passcode denied/wrong-passcode locked/locked locked/locked"
		if strings.Join(got, " ") != want {
			t.Errorf("number %s: %v", number, got)
		}
	}
}

// With the shared store out of reach the door refuses at once: no digit
// is asked for, so no passcode is checked that could not be counted.
func TestUnavailableStoreRefusesBeforeDigits(t *testing.T) {
	h := newHarness(t)
	h.account("alice", "101", alicePass)
	h.mu.Lock()
	h.unavailable = errors.New("shared store unreachable since 12:00")
	h.mu.Unlock()
	tr := h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))
	if got := outcome(tr); got != "error/store-unreachable" {
		t.Fatalf("outcome %s, want error/store-unreachable", got)
	}
	for _, c := range tr.Commands {
		if strings.HasPrefix(c, "GET DATA") {
			t.Errorf("asked for digits: %s", c)
		}
	}
	if h.checks.Load() != 0 || len(h.granted()) != 0 {
		t.Errorf("%d passcode checks, %d grants while unavailable", h.checks.Load(), len(h.granted()))
	}
	if !strings.Contains(h.auditText(), "store-unreachable") {
		t.Errorf("refusal not audited:\n%s", h.auditText())
	}
	h.mu.Lock()
	h.unavailable = nil
	h.mu.Unlock()
	if got := outcome(h.call(sip("SIP/trunk-00000001", "555", traveler, "101#", alicePass+"#"))); got != "granted/granted" {
		t.Fatalf("back again: %s", got)
	}
}
