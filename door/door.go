package door

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
)

// Values of the DIALGATE_RESULT channel variable, for dialplans.
const (
	ResultGranted = "granted" // the caller's address was opened
	ResultDenied  = "denied"  // wrong passcode, too many tries, rate limit, no usable address
	ResultLocked  = "locked"  // a lockout key of the call is locked
	ResultLAN     = "lan"     // the address is already admitted (a LAN range): nothing to do
	ResultHangup  = "hangup"  // the caller hung up before the door decided
	ResultError   = "error"   // the door could not work: store, firewall, AGI
)

// Values of DIALGATE_REASON: why, in one word, for the dialplan, the audit
// log and `dialgate test-call`.
const (
	ReasonGranted       = "granted"
	ReasonWrongPasscode = "wrong-passcode"
	ReasonNoPasscode    = "no-passcode"
	ReasonRateLimited   = "rate-limited"
	ReasonLocked        = "locked"
	ReasonAdmitted      = "already-admitted"
	ReasonNotGrantable  = "not-grantable"
	ReasonNoAddress     = "no-address"
	ReasonHangup        = "hangup"
	ReasonStore         = "store-error"
	// ReasonStoreUnreachable: the shared store (etcd) does not answer,
	// so no grant or failure could be recorded; refused before a passcode
	// is asked for.
	ReasonStoreUnreachable = "store-unreachable"
	ReasonGrantFailed      = "grant-failed"
	ReasonAGI              = "agi-error"
)

// ErrAdmitted is wrapped by a GrantFunc's error when the address is
// already admitted without a grant (a LAN range): the caller hears that
// they are in, and the result is "lan", not a refusal.
var ErrAdmitted = errors.New("address already admitted")

// GrantRequest asks for time-limited access for one address.
type GrantRequest struct {
	Account  string
	IP       netip.Addr
	Source   string // "phone:contact", "phone:channel", "phone:register", ...
	CallerID string
	Channel  string
	// Perms and Lifetime, when set, replace the account's perms and
	// grant lifetime (a registration grant admits SIP only, for the
	// registration's life).
	Perms    store.PermSet
	Lifetime time.Duration
}

// GrantFunc records a grant and makes the kernel admit it. Errors wrapping
// ErrAdmitted mean "nothing to do"; wrapping auth.ErrNotGrantable, "never
// for this address"; anything else is a failure of the machinery.
type GrantFunc func(ctx context.Context, req GrantRequest) (store.Grant, error)

// ContactLookup finds the addresses an account's SIP extension is
// registered from (the AMI client). Without one the door uses the calling
// channel's own address.
type ContactLookup interface {
	RegisteredAddrs(ctx context.Context, extension string) ([]netip.Addr, error)
}

// Metrics is told about every call; nil means none.
type Metrics interface {
	CallStarted()
	CallEnded(result string)
}

// Config is what the door reads for each call; the daemon builds it from
// its [door] table, so a reload applies to the next call.
type Config struct {
	Tries        int           // passcode tries per call
	DigitTimeout time.Duration // GET DATA timeout
	MaxGrants    int           // default live grants per account

	MaxFailures   int           // a lockout key locks after this many failures...
	FailureWindow time.Duration // ...within this window...
	LockFor       time.Duration // ...for this long

	RatePerMinute         int // checks a minute, shared by callers who key an account number
	IdentityRatePerMinute int // checks a minute for each bound identity
	MaxChecksPerMinute    int // checks a minute in all: the last line

	Sounds Sounds
}

// Sounds are the Asterisk sound files the door plays. The defaults are all
// Asterisk core sounds (asterisk-core-sounds-en), so a stock server plays
// every one.
type Sounds struct {
	AccountPrompt string // "agent-user": key your account number
	Prompt        string // "agent-pass": key your passcode
	Incorrect     string // "auth-incorrect": wrong, key it again
	Denied        string // "vm-incorrect": wrong, and no tries left
	IPPrompt      string // "vm-enter-num-to-call": key an address, * for dots
	YouEntered    string // "you-entered": before the keyed address is read back
	Dot           string // "letters/dot"
	Granted       string // "auth-thankyou", then the lifetime
	Hours         string // "hours"
	Minutes       string // "minutes"
	Minute        string // "minute"
	And           string // "vm-and"
	Admitted      string // "auth-thankyou": already admitted, nothing to do
	Locked        string // "beeperr"
	Failed        string // "im-sorry": refused for another reason, or an error
}

// DefaultSounds are core sounds only; TestDefaultSoundsAreCoreSounds
// holds them to that.
var DefaultSounds = Sounds{
	AccountPrompt: "agent-user", Prompt: "agent-pass", Incorrect: "auth-incorrect", Denied: "vm-incorrect",
	IPPrompt: "vm-enter-num-to-call", YouEntered: "you-entered", Dot: "letters/dot",
	Granted: "auth-thankyou", Hours: "hours", Minutes: "minutes", Minute: "minute", And: "vm-and",
	Admitted: "auth-thankyou", Locked: "beeperr", Failed: "im-sorry",
}

// DefaultConfig is what a fresh install uses.
func DefaultConfig() Config {
	return Config{
		Tries: 3, DigitTimeout: 10 * time.Second, MaxGrants: 3,
		MaxFailures: 5, FailureWindow: 15 * time.Minute, LockFor: 15 * time.Minute,
		RatePerMinute: 60, IdentityRatePerMinute: 6, MaxChecksPerMinute: 300,
		Sounds: DefaultSounds,
	}
}

// Deps are what the door needs from the rest of dialgate. Store, Grant and
// Config are required.
type Deps struct {
	Store  store.Store
	Grant  GrantFunc
	Config func() Config
	Audit  func(store.AuditRecord) // nil: not audited (tests only)
	// Available is nil or returns nil while grants and failures can be
	// recorded; an error refuses the call before the passcode (a shared
	// store out of reach).
	Available func() error
	Contacts  ContactLookup
	Now       func() time.Time // nil: time.Now
	Log       *slog.Logger     // nil: slog.Default()
	Metrics   Metrics
	// Hash is the argon2id cost of the dummy hash checked for unknown
	// account numbers; it should match the cost of real passcodes.
	Hash auth.Params
	// Concurrency bounds the argon2id checks running at once (each holds
	// Hash.Memory); 0 means one per Hash.Threads cores, at least one: a
	// check on two lanes already keeps two cores busy.
	Concurrency int
}

// Door is the phone door, an agi.Handler for /authorize. It is safe for
// concurrent use by any number of calls.
type Door struct {
	deps  Deps
	dummy string // a hash of a random passcode, for unknown numbers
	// slots bound the argon2id checks running at once: each holds
	// Hash.Memory, and a crowd of callers must not exhaust the PBX.
	slots chan struct{}
	// verify is auth.VerifyPasscode; tests count calls through it.
	verify func(code, phc string) (bool, error)

	mu       sync.Mutex
	contacts ContactLookup

	limits   *limits
	inflight *reservations
}

// New builds a door. It computes one dummy hash, so it takes as long as
// one passcode check.
func New(deps Deps) (*Door, error) {
	if deps.Store == nil || deps.Grant == nil || deps.Config == nil {
		return nil, errors.New("door: Store, Grant and Config are required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Hash == (auth.Params{}) {
		deps.Hash = auth.DefaultParams
	}
	code, err := auth.RandomPasscode(12)
	if err != nil {
		return nil, fmt.Errorf("door: %w", err)
	}
	dummy, err := auth.HashPasscode(code, deps.Hash)
	if err != nil {
		return nil, fmt.Errorf("door: dummy hash: %w", err)
	}
	return &Door{
		deps: deps, dummy: dummy, verify: auth.VerifyPasscode,
		slots:    make(chan struct{}, cmpOr(deps.Concurrency, max(1, runtime.GOMAXPROCS(0)/int(max(deps.Hash.Threads, 1))))),
		contacts: deps.Contacts, limits: newLimits(), inflight: newReservations(),
	}, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// SetContacts replaces the registered-contact lookup (the AMI client starts
// after the door).
func (d *Door) SetContacts(c ContactLookup) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.contacts = c
}

func (d *Door) contactLookup() ContactLookup {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.contacts
}

// Outcome is how one call ended.
type Outcome struct {
	Result string
	Reason string
}

// ServeAGI implements agi.Handler. It sets DIALGATE_RESULT and
// DIALGATE_REASON and returns without hanging up: the dialplan goes on
// after AGI() and decides what the caller hears last.
func (d *Door) ServeAGI(ctx context.Context, s *agi.Session) {
	if m := d.deps.Metrics; m != nil {
		m.CallStarted()
	}
	out := d.Serve(ctx, s)
	if m := d.deps.Metrics; m != nil {
		m.CallEnded(out.Result)
	}
	// SET VARIABLE works after a hangup too, so the h extension sees it.
	for _, v := range [][2]string{{"DIALGATE_RESULT", out.Result}, {"DIALGATE_REASON", out.Reason}} {
		if err := s.SetVariable(ctx, v[0], v[1]); err != nil && !errors.Is(err, agi.ErrHangup) {
			d.deps.Log.Debug("door: set variable", "name", v[0], "err", err)
		}
	}
}

// Serve runs one call and returns its outcome without setting channel
// variables; ServeAGI is Serve plus those.
func (d *Door) Serve(ctx context.Context, s *agi.Session) Outcome {
	c := &call{Door: d, s: s, cfg: d.deps.Config(), callerID: s.Env.CallerID, channel: s.Env.Channel}
	c.cid, c.hasCID = auth.CanonicalCallerID(c.callerID)
	return c.run(ctx)
}

// check verifies one passcode against one hash, waiting for a slot. It
// returns ctx's error if the caller is gone before a slot frees.
func (d *Door) check(ctx context.Context, code, phc string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-d.slots }()
	return d.verify(code, phc)
}
