package door

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
)

// limits are the door's rate limits, in memory (a restart refills them;
// lockouts, which are stored, still hold). A bound identity draws on its
// own bucket, everyone who keyed an account number on one shared bucket,
// and every check on the global ceiling. So a flood of calls from
// invented caller IDs empties the shared bucket and no one else's.
type limits struct {
	mu      sync.Mutex
	rates   [3]int // the rates the buckets were made for, to follow a reload
	global  *auth.RateLimiter
	shared  *auth.RateLimiter
	ident   map[string]*auth.RateLimiter
	sweepAt int
}

func newLimits() *limits { return &limits{ident: map[string]*auth.RateLimiter{}} }

// burst lets a short run through: a bucket of a tenth of a minute's rate,
// at least the tries of one call.
func burst(perMinute, tries int) int { return max(perMinute/10, tries, 1) }

// allow takes a token for one check by identity ("" for the shared
// bucket). which names the bucket that refused.
func (l *limits) allow(cfg Config, identity string, now time.Time) (ok bool, which string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := [3]int{cfg.MaxChecksPerMinute, cfg.RatePerMinute, cfg.IdentityRatePerMinute}; r != l.rates || l.global == nil {
		l.rates = r
		l.global = auth.NewRateLimiter(cfg.MaxChecksPerMinute, burst(cfg.MaxChecksPerMinute, cfg.Tries))
		l.shared = auth.NewRateLimiter(cfg.RatePerMinute, burst(cfg.RatePerMinute, cfg.Tries))
		clear(l.ident)
	}
	if identity == "" {
		if !l.shared.Allow(now) {
			return false, "shared"
		}
	} else {
		b := l.ident[identity]
		if b == nil {
			l.sweep(now)
			b = auth.NewRateLimiter(cfg.IdentityRatePerMinute, max(cfg.Tries, 1))
			l.ident[identity] = b
		}
		if !b.Allow(now) {
			return false, "per-identity"
		}
	}
	if !l.global.Allow(now) {
		return false, "global"
	}
	return true, ""
}

// sweep forgets full buckets once the map has grown: a full bucket is the
// same as a new one. Identities are accounts, so the map is bounded by
// them anyway; the sweep keeps it bounded by the active ones.
func (l *limits) sweep(now time.Time) {
	if len(l.ident) < max(1024, 2*l.sweepAt) {
		return
	}
	for k, b := range l.ident {
		if b.Idle(now) {
			delete(l.ident, k)
		}
	}
	l.sweepAt = len(l.ident)
}

// reservations are the tries being checked right now, per lockout key.
// A try is reserved before its hash and released after its failure is
// stored (or on success), so that parallel calls never take more tries
// than a key has left: stored failures plus tries in flight stay within
// max_failures. They live in memory because they only matter while the
// calls that hold them do.
type reservations struct {
	mu   sync.Mutex
	n    map[string]int
	wake chan struct{} // closed and replaced on every release
}

func newReservations() *reservations {
	return &reservations{n: map[string]int{}, wake: make(chan struct{})}
}

// errBusy means a key's last tries are all being checked by other calls
// and none finished within the wait.
var errBusy = errors.New("every try left is being checked by other calls")

// reserve takes one try from every key, or none. ok is false when a key
// is locked (until is when the lock ends). A key whose remaining tries are
// all in flight in other calls is waited for, up to wait: those calls
// either fail, and the stored lock then answers, or succeed and give
// their tries back. Refusing at once would tell a right caller "locked"
// while nothing is locked.
func (r *reservations) reserve(ctx context.Context, db store.Store, p auth.LockoutPolicy, keys []string, now func() time.Time, wait time.Duration) (until time.Time, ok bool, err error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		busy := false
		err = db.View(func(tx store.Tx) error {
			for _, k := range keys {
				left, u, err := p.Remaining(tx, k, now())
				if err != nil {
					return err
				}
				if left == 0 {
					until = u
					return nil
				}
				if left-r.n[k] <= 0 {
					busy = true
				}
			}
			return nil
		})
		if err != nil || !until.IsZero() {
			r.mu.Unlock()
			return until, false, err
		}
		if !busy {
			for _, k := range keys {
				r.n[k]++
			}
			r.mu.Unlock()
			return time.Time{}, true, nil
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-timer.C:
			return time.Time{}, false, errBusy
		case <-ctx.Done():
			return time.Time{}, false, ctx.Err()
		}
	}
}

func (r *reservations) release(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if r.n[k]--; r.n[k] <= 0 {
			delete(r.n, k)
		}
	}
	close(r.wake)
	r.wake = make(chan struct{})
}
