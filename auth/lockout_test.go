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
	db, err := store.Open(filepath.Join(t.TempDir(), "dialgate.db"), store.Options{Create: true})
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
			keys := []string{"cid:+15551234567", "acct:alice"}
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

func TestLockoutKeysAreIndependent(t *testing.T) {
	db := openStore(t)
	p := DefaultLockoutPolicy
	for range p.MaxFailures {
		fail(t, db, p, []string{"cid:+15551234567", "acct:alice"}, lockT0)
	}
	cases := []struct {
		keys []string
		want bool
	}{
		{[]string{"cid:+15551234567", "acct:bob"}, true},   // same caller, another account
		{[]string{"cid:+15559999999", "acct:alice"}, true}, // another caller at the same account
		{[]string{"cid:+15559999999", "bound:alice"}, false},
		{[]string{"acct:bob"}, false},
		{nil, false},
	}
	for _, c := range cases {
		if _, ok := locked(t, db, p, c.keys, lockT0.Add(time.Minute)); ok != c.want {
			t.Errorf("%q: locked = %v, want %v", c.keys, ok, c.want)
		}
	}
}

func TestLockoutConcurrentFailures(t *testing.T) {
	// Separate Updates are serialised, so no failure is lost and exactly
	// one of them starts the lock.
	db := openStore(t)
	p := DefaultLockoutPolicy
	keys := []string{"cid:+15551234567"}
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
