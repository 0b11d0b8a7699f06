package daemon

import (
	"net"
	"net/netip"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/door"
)

// Values of the DIALGATE_RESULT channel variable, as the door sets them.
const (
	ResultGranted = door.ResultGranted
	ResultDenied  = door.ResultDenied
	ResultLocked  = door.ResultLocked
	ResultLAN     = door.ResultLAN
	ResultHangup  = door.ResultHangup
	ResultError   = door.ResultError
)

// ContactLookup finds the addresses an account's SIP extension is
// registered from; see door.ContactLookup.
type ContactLookup = door.ContactLookup

// GrantRequest asks for time-limited access for one address.
type GrantRequest = door.GrantRequest

// doorConfig is the [door] table as the door reads it.
func (c DoorConfig) doorConfig() door.Config {
	s := c.Sounds
	return door.Config{
		Tries: c.Tries, DigitTimeout: c.DigitTimeout.Duration, MaxGrants: c.MaxGrants,
		MaxFailures: c.MaxFailures, FailureWindow: c.FailureWindow.Duration, LockFor: c.LockFor.Duration,
		RatePerMinute: c.RatePerMinute, IdentityRatePerMinute: c.IdentityRatePerMinute, MaxChecksPerMinute: c.MaxChecksPerMinute,
		Sounds: door.Sounds{
			AccountPrompt: s.AccountPrompt, Prompt: s.Prompt, Incorrect: s.Incorrect, Denied: s.Denied,
			IPPrompt: s.IPPrompt, YouEntered: s.YouEntered, Dot: s.Dot,
			Granted: s.Granted, Hours: s.Hours, Minutes: s.Minutes, Minute: s.Minute, And: s.And,
			Admitted: s.Admitted, Locked: s.Locked, Failed: s.Failed,
		},
	}
}

func (c DoorConfig) hashParams() auth.Params {
	return auth.Params{Memory: c.HashMemoryKiB, Time: c.HashTime, Threads: c.HashThreads}
}

// newDoor builds the phone door with the daemon as its store, grant,
// audit, clock and metrics.
func (d *Daemon) newDoor(contacts ContactLookup) (*door.Door, error) {
	return door.New(door.Deps{
		Store:     d.db,
		Grant:     d.Grant,
		Config:    func() door.Config { return d.config().Door.doorConfig() },
		Audit:     d.audit,
		Available: d.storeAvailable,
		Contacts:  contacts,
		Now:       func() time.Time { return d.now() },
		Log:       d.log.With("component", "door"),
		Metrics:   doorMetrics{d.metrics},
		Hash:      d.config().Door.hashParams(),
	})
}

type doorMetrics struct{ m *metrics }

func (dm doorMetrics) CallStarted() {
	dm.m.agiSessions.Inc()
	dm.m.agiActive.Inc()
}

func (dm doorMetrics) CallEnded(result string) {
	dm.m.agiActive.Dec()
	dm.m.doorCalls.WithLabelValues(result).Inc()
}

// ownAddrs lists the addresses of this machine's interfaces (in the
// daemon's network namespace): a grant for one of them is meaningless.
// Variable so tests can pin it.
var ownAddrs = func() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
