package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dialgate/dialgate/store"
)

var lockT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dialgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func update(t *testing.T, db *store.DB, fn func(store.Tx) error) {
	t.Helper()
	if err := db.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func fail(t *testing.T, db *store.DB, p LockoutPolicy, keys []string, at time.Time) (lockedNow bool) {
	t.Helper()
	update(t, db, func(tx store.Tx) (err error) {
		lockedNow, err = p.Fail(tx, keys, at)
		return err
	})
	return lockedNow
}

func locked(t *testing.T, db *store.DB, p LockoutPolicy, keys []string, at time.Time) (until time.Time, ok bool) {
	t.Helper()
	err := db.View(func(tx store.Tx) (err error) {
		until, ok, err = p.Locked(tx, keys, at)
		return err
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return until, ok
}

func TestLockoutPolicyValidate(t *testing.T) {
	cases := []struct {
		p     LockoutPolicy
		field string // "" = valid
	}{
		{DefaultLockoutPolicy, ""},
		{LockoutPolicy{MaxFailures: 1, Window: time.Second, LockFor: time.Second}, ""},
		{LockoutPolicy{MaxFailures: 0, Window: time.Minute, LockFor: time.Minute}, "max failures"},
		{LockoutPolicy{MaxFailures: 101, Window: time.Minute, LockFor: time.Minute}, "max failures"},
		{LockoutPolicy{MaxFailures: 5, Window: 0, LockFor: time.Minute}, "window"},
		{LockoutPolicy{MaxFailures: 5, Window: time.Minute, LockFor: -time.Minute}, "duration"},
		{LockoutPolicy{}, "max failures"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		if c.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.p, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: got %v, want ErrInvalid naming %s", c.p, err, c.field)
		}
	}
}

func TestLockout(t *testing.T) {
	p := DefaultLockoutPolicy // 5 failures in 15m lock for 15m
	mins := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	cases := []struct {
		name     string
		fails    []time.Duration // failure times after lockT0
		lockedAt int             // index of the failure that locks; -1 = none
		check    time.Duration   // when to ask Locked
		want     bool
		until    time.Duration // expected LockedUntil after lockT0
	}{
		{"4 failures", []time.Duration{0, mins(1), mins(2), mins(3)}, -1, mins(4), false, 0},
		{"5th failure locks", []time.Duration{0, mins(1), mins(2), mins(3), mins(4)}, 4, mins(4), true, mins(4 + 15)},
		{"still locked just before expiry", []time.Duration{0, 0, 0, 0, 0}, 4, mins(15) - time.Second, true, mins(15)},
		{"lock expires", []time.Duration{0, 0, 0, 0, 0}, 4, mins(15), false, 0},
		{"failures outside the window do not count", []time.Duration{0, mins(1), mins(2), mins(3), mins(20)}, -1, mins(20), false, 0},
		{"window is exclusive", []time.Duration{0, mins(5), mins(6), mins(7), mins(15)}, -1, mins(15), false, 0},
		{"window slides", []time.Duration{0, mins(5), mins(6), mins(7), mins(15), mins(16)}, 5, mins(16), true, mins(16 + 15)},
		{"count restarts after a lock", []time.Duration{0, 0, 0, 0, 0, mins(16), mins(16), mins(16), mins(16)}, 4, mins(16), false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := openStore(t)
			keys := LockoutKeys("+15551234567", "PJSIP/traveler-00000001")
			for i, d := range c.fails {
				if got := fail(t, db, p, keys, lockT0.Add(d)); got != (i == c.lockedAt) {
					t.Errorf("failure %d at +%v: lockedNow = %v", i+1, d, got)
				}
			}
			until, ok := locked(t, db, p, keys, lockT0.Add(c.check))
			if ok != c.want {
				t.Fatalf("Locked at +%v = %v, want %v", c.check, ok, c.want)
			}
			if ok && !until.Equal(lockT0.Add(c.until)) {
				t.Errorf("locked until %v, want %v", until, lockT0.Add(c.until))
			}
			if !ok && !until.IsZero() {
				t.Errorf("not locked, but until = %v", until)
			}
		})
	}
}

func TestLockoutSucceedClears(t *testing.T) {
	db := openStore(t)
	p := DefaultLockoutPolicy
	keys := LockoutKeys("+15551234567", "SIP/traveler-0000002a")
	for range 4 {
		fail(t, db, p, keys, lockT0)
	}
	update(t, db, func(tx store.Tx) error { return p.Succeed(tx, keys) })
	// Four more: a cleared count does not lock at the first of them.
	for i := range 4 {
		if fail(t, db, p, keys, lockT0) {
			t.Fatalf("failure %d after success locked", i+1)
		}
	}
	if fail(t, db, p, keys, lockT0) == false {
		t.Fatal("5th failure after success did not lock")
	}
	update(t, db, func(tx store.Tx) error { return p.Succeed(tx, keys) })
	if _, ok := locked(t, db, p, keys, lockT0); ok {
		t.Error("still locked after Succeed")
	}
	update(t, db, func(tx store.Tx) error {
		if _, err := tx.Lockout(keys[0]); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record left after Succeed: %v", err)
		}
		// Keys with nothing recorded are fine.
		return p.Succeed(tx, LockoutKeys("+15550000000", "PJSIP/nobody-00000001"))
	})
}

func TestLockoutKeysAreIndependent(t *testing.T) {
	db := openStore(t)
	p := DefaultLockoutPolicy
	for range p.MaxFailures {
		fail(t, db, p, LockoutKeys("+15551234567", "PJSIP/hotel-00000001"), lockT0)
	}
	cases := []struct {
		callerID, channel string
		want              bool
	}{
		{"+15551234567", "PJSIP/hotel-00000002", true}, // same caller, same peer, next call
		{"+15551234567", "PJSIP/cafe-00000003", true},  // same caller ID from another peer
		{"+15559999999", "PJSIP/hotel-00000004", true}, // another number through the same peer
		{"+15559999999", "PJSIP/cafe-00000005", false},
		{"", "PJSIP/cafe-00000006", false},
	}
	for _, c := range cases {
		if _, ok := locked(t, db, p, LockoutKeys(c.callerID, c.channel), lockT0.Add(time.Minute)); ok != c.want {
			t.Errorf("%q via %q: locked = %v, want %v", c.callerID, c.channel, ok, c.want)
		}
	}
}

func TestLockoutConcurrentFailures(t *testing.T) {
	// Separate Updates are serialised, so no failure is lost and exactly
	// one of them starts the lock.
	db := openStore(t)
	p := DefaultLockoutPolicy
	keys := LockoutKeys("unknown", "SIP/anon-00000001")
	var wg sync.WaitGroup
	var locks atomic.Int64
	for range p.MaxFailures {
		wg.Go(func() {
			err := db.Update(func(tx store.Tx) error {
				now, err := p.Fail(tx, keys, lockT0)
				if now {
					locks.Add(1)
				}
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := locks.Load(); n != 1 {
		t.Errorf("%d failures reported starting the lock, want 1", n)
	}
	if _, ok := locked(t, db, p, keys, lockT0); !ok {
		t.Error("not locked")
	}
}

func TestLockoutFailRefusesBadPolicy(t *testing.T) {
	db := openStore(t)
	err := db.Update(func(tx store.Tx) error {
		_, err := LockoutPolicy{}.Fail(tx, []string{"cid:"}, lockT0)
		return err
	})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestLockoutKeys(t *testing.T) {
	long := "+1" + strings.Repeat("5", 10000)
	cases := []struct {
		callerID, channel string
		cid, chn          string
	}{
		{"+15551234567", "SIP/traveler-0000002a", "cid:+15551234567", "chan:SIP/traveler"},
		{"201", "PJSIP/100-00000001", "cid:201", "chan:PJSIP/100"},
		{"201", "PJSIP/road-warrior-0000beef", "cid:201", "chan:PJSIP/road-warrior"},
		{"201", "SIP/203.0.113.7-0000002a", "cid:201", "chan:SIP/203.0.113.7"},
		{"201", "Local/s@ctx-0000;1", "cid:201", "chan:Local/s@ctx"},
		{"201", "Local/s@ctx-0000;2", "cid:201", "chan:Local/s@ctx"},
		{"201", "Local/100@from-internal-00000012;1", "cid:201", "chan:Local/100@from-internal"},
		{"201", "DAHDI/1-1", "cid:201", "chan:DAHDI/1"},
		{"201", "IAX2/peer-1234", "cid:201", "chan:IAX2/peer"},
		{"201", "PJSIP/traveler", "cid:201", "chan:PJSIP/traveler"},           // no suffix
		{"201", "PJSIP/traveler-home", "cid:201", "chan:PJSIP/traveler-home"}, // not a hex suffix
		{"201", "", "cid:201", "chan:"},
		{"", "SIP/x-1", "cid:", "chan:SIP/x"},
		{"unknown", "SIP/x-1", "cid:", "chan:SIP/x"},
		{"Unknown", "SIP/x-1", "cid:", "chan:SIP/x"},
		{"  +4930123  ", "SIP/x-1", "cid:+4930123", "chan:SIP/x"},
		{"555\r\n\x1b[2Jevil", "SIP/x\n-1", "cid:555???[2Jevil", "chan:SIP/x?"},
		{"Zürich", "SIP/x-1", "cid:Z??rich", "chan:SIP/x"},
		{long, "SIP/" + strings.Repeat("a", 500) + "-1", "cid:" + long[:124], "chan:SIP/" + strings.Repeat("a", 119)},
	}
	for _, c := range cases {
		got := LockoutKeys(c.callerID, c.channel)
		if len(got) != 2 || got[0] != c.cid || got[1] != c.chn {
			t.Errorf("LockoutKeys(%.20q, %.20q) = %.40q, want [%.40q %.40q]", c.callerID, c.channel, got, c.cid, c.chn)
		}
		for _, k := range got {
			if len(k) > maxLockoutKeyLen {
				t.Errorf("key of %d bytes, over %d", len(k), maxLockoutKeyLen)
			}
		}
	}
}

func TestRateLimiter(t *testing.T) {
	r := NewRateLimiter(6, 3) // a token every 10s, 3 at once
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, true}, // the burst
		{0, false},                // then refusal
		{5 * time.Second, false},  // half a token is not a token
		{10 * time.Second, true},  // one refilled
		{10 * time.Second, false}, // and only one
		{25 * time.Second, true},  // another
		{29 * time.Second, false}, //
		{10 * time.Minute, true},  // a long pause refills the burst,
		{10 * time.Minute, true},  //
		{10 * time.Minute, true},  //
		{10 * time.Minute, false}, // never beyond it
		{10*time.Minute + 9*time.Second, false},
		{10*time.Minute + 10*time.Second, true},
	}
	for i, s := range steps {
		if got := r.Allow(lockT0.Add(s.at)); got != s.want {
			t.Errorf("step %d at +%v: Allow = %v, want %v", i, s.at, got, s.want)
		}
	}
}

func TestRateLimiterClamps(t *testing.T) {
	r := NewRateLimiter(0, 0) // one a minute, one at once
	for i, s := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {0, false}, {59 * time.Second, false}, {time.Minute, true}} {
		if got := r.Allow(lockT0.Add(s.at)); got != s.want {
			t.Errorf("step %d at +%v: Allow = %v, want %v", i, s.at, got, s.want)
		}
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	const burst = 10
	r := NewRateLimiter(60, burst)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if r.Allow(lockT0) {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != burst {
		t.Errorf("%d of 100 simultaneous attempts allowed, want %d", n, burst)
	}
}
