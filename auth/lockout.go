package auth

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dialgate/dialgate/store"
)

// LockoutPolicy locks a key for LockFor once MaxFailures failed attempts
// for it fall within Window.
type LockoutPolicy struct {
	MaxFailures int
	Window      time.Duration
	LockFor     time.Duration
}

// DefaultLockoutPolicy allows 5 failures per 15 minutes, then locks for 15
// minutes: enough for a traveller fumbling a keypad, and with the global
// RateLimiter it keeps a 4-digit space out of practical reach.
var DefaultLockoutPolicy = LockoutPolicy{MaxFailures: 5, Window: 15 * time.Minute, LockFor: 15 * time.Minute}

// Every failure is stored under each key until it ages out, so the ceiling
// bounds the size of a record as well as the policy's leniency.
const maxLockoutFailures = 100

// Validate checks that the policy locks at all: a zero MaxFailures would
// lock on every first failure, a zero Window or LockFor never.
func (p LockoutPolicy) Validate() error {
	switch {
	case p.MaxFailures < 1 || p.MaxFailures > maxLockoutFailures:
		return invalid("lockout max failures %d: want 1-%d", p.MaxFailures, maxLockoutFailures)
	case p.Window <= 0:
		return invalid("lockout window %v: must be positive", p.Window)
	case p.LockFor <= 0:
		return invalid("lockout duration %v: must be positive", p.LockFor)
	}
	return nil
}

// LockoutStore is the subset of store.Tx used here; pass a transaction.
// Call Fail and Succeed inside an Update: each is a read-modify-write, and
// the store serialises Updates, so concurrent calls never lose each
// other's failures and an error leaves nothing half-written. Verify the
// passcode between Locked and Fail outside any transaction: argon2 is far
// too slow to hold the store's write lock.
type LockoutStore interface {
	Lockout(key string) (store.Lockout, error)
	PutLockout(store.Lockout) error
	DeleteLockout(key string) error
}

var _ LockoutStore = store.Tx(nil)

// Locked reports whether any of keys is locked at now and, if so, until
// when (the latest of their locks).
func (p LockoutPolicy) Locked(tx LockoutStore, keys []string, now time.Time) (until time.Time, locked bool, err error) {
	for _, k := range keys {
		l, err := tx.Lockout(k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("check lockout: %w", err)
		}
		if l.LockedUntil.After(now) && l.LockedUntil.After(until) {
			until = l.LockedUntil
		}
	}
	return until, !until.IsZero(), nil
}

// Fail records a failed attempt at now against each key, forgetting
// failures older than Window, and locks a key for LockFor once it has
// MaxFailures. lockedNow reports whether this failure started a lock on
// any key, so the caller can audit the lockout once.
//
// A key's failures are cleared when it is locked: the lock is their
// penalty, and counting them again after it would re-lock on the first
// slip when LockFor is shorter than Window.
func (p LockoutPolicy) Fail(tx LockoutStore, keys []string, now time.Time) (lockedNow bool, err error) {
	if err := p.Validate(); err != nil {
		return false, err
	}
	for i, k := range keys {
		if slices.Contains(keys[:i], k) {
			continue // counting a key twice would halve its allowance
		}
		l, err := tx.Lockout(k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			l = store.Lockout{Key: k}
		case err != nil:
			return false, fmt.Errorf("record failed attempt: %w", err)
		}
		l.Failures = slices.DeleteFunc(l.Failures, func(f time.Time) bool { return now.Sub(f) >= p.Window })
		l.Failures = append(l.Failures, now)
		if !l.LockedUntil.After(now) {
			l.LockedUntil = time.Time{}
		}
		if len(l.Failures) >= p.MaxFailures {
			l.LockedUntil = now.Add(p.LockFor)
			l.Failures = nil
			lockedNow = true
		}
		if err := tx.PutLockout(l); err != nil {
			return false, fmt.Errorf("record failed attempt: %w", err)
		}
	}
	return lockedNow, nil
}

// RateLimiter is a global token bucket on passcode attempts, so that many
// callers from many numbers cannot brute-force in parallel beyond it. It
// lives in memory: a restart refills it, which is fine because lockouts
// are persistent. Use NewRateLimiter; a RateLimiter is safe for
// concurrent use.
//
// It is the generic cell rate algorithm, equivalent to a token bucket but
// kept as one time instead of a count of fractional tokens, so refill is
// exact integer arithmetic on durations.
type RateLimiter struct {
	interval  time.Duration // one token's refill time
	tolerance time.Duration // (burst-1) intervals: how far ahead tat may run

	mu  sync.Mutex
	tat time.Time // theoretical arrival time of the next conforming attempt
}

// NewRateLimiter allows burst attempts at once and perMinute on average.
// Values below 1 mean 1: a rate of zero would close the phone door for
// good after the first burst, which should be a deliberate switch, not a
// typo.
func NewRateLimiter(perMinute int, burst int) *RateLimiter {
	interval := time.Minute / time.Duration(max(perMinute, 1))
	return &RateLimiter{interval: interval, tolerance: time.Duration(max(burst, 1)-1) * interval}
}

// Allow takes a token at now if one is left. Pass time.Now(): its
// monotonic reading keeps wall-clock steps out of the arithmetic. A now
// earlier than the last is not treated as a clock step to repair:
// concurrent callers' readings arrive slightly out of order, and resetting
// on them would refill the bucket.
func (r *RateLimiter) Allow(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	tat := r.tat
	if tat.Before(now) {
		tat = now
	}
	if tat.Sub(now) > r.tolerance {
		return false
	}
	r.tat = tat.Add(r.interval)
	return true
}

// Idle reports whether the bucket is full at now: forgetting it then
// changes nothing, since a new one starts full.
func (r *RateLimiter) Idle(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.tat.After(now)
}
