package door

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
)

const (
	maxPasscodeDigits = 20
	maxNumberDigits   = 10
	maxIPDigits       = 15 // 255*255*255*255
)

// call is one caller's way through the door.
type call struct {
	*Door
	s        *agi.Session
	cfg      Config
	callerID string // as presented, for the audit
	cid      string // canonical caller ID, when hasCID
	hasCID   bool
	channel  string
	id       identity
	try      int // the try whose passcode was right
}

func (c *call) now() time.Time { return c.deps.Now() }

// audit records one step. Digits keyed are never part of it.
func (c *call) audit(action, result, reason, detail string) {
	acct := ""
	if c.id.found {
		acct = c.id.acct.Name
	}
	if c.deps.Audit != nil {
		c.deps.Audit(store.AuditRecord{Action: action, Actor: "phone", Account: acct, Subject: c.callerID, Result: result,
			Detail: strings.TrimSpace(fmt.Sprintf("reason=%s callerid=%q channel=%q identified=%s %s", reason, c.callerID, c.channel, c.id.how, detail))})
	}
	log := c.deps.Log.Info
	switch result {
	case ResultDenied, ResultLocked:
		log = c.deps.Log.Warn
	case ResultError:
		log = c.deps.Log.Error
	}
	log("door", "action", action, "account", acct, "result", result, "reason", reason,
		"callerid", c.callerID, "channel", c.channel, "identified", c.id.how, "detail", detail)
}

// end finishes the call with an outcome, audited, after playing sound.
func (c *call) end(result, reason, sound, detail string) Outcome {
	c.audit("door", result, reason, detail)
	if sound != "" {
		c.say(context.Background(), sound)
	}
	return Outcome{Result: result, Reason: reason}
}

// broke ends the call on an AGI or context error: a caller who hung up is
// "hangup", logged at Info and not a refusal; anything else is an error.
func (c *call) broke(err error, step string) Outcome {
	if errors.Is(err, agi.ErrHangup) || c.s.HungUp() || errors.Is(err, context.Canceled) {
		return c.end(ResultHangup, ReasonHangup, "", step)
	}
	return c.end(ResultError, ReasonAGI, c.cfg.Sounds.Failed, fmt.Sprintf("%s: %v", step, err))
}

// say plays a sound, ignoring failures: the caller may have hung up, and
// nothing they hear changes what was decided.
func (c *call) say(ctx context.Context, sound string) {
	if sound != "" && !c.s.HungUp() {
		_, _ = c.s.StreamFile(ctx, sound, "")
	}
}

func (c *call) run(ctx context.Context) Outcome {
	if err := c.s.Answer(ctx); err != nil {
		return c.broke(err, "answer")
	}
	// Refused before any digit: a passcode checked but not counted would
	// be a free guess.
	if c.deps.Available != nil {
		if err := c.deps.Available(); err != nil {
			return c.end(ResultError, ReasonStoreUnreachable, c.cfg.Sounds.Failed, err.Error())
		}
	}
	if out, done := c.identify(ctx); done {
		return out
	}
	keyed, wrong := false, false
	for try := 1; try <= c.cfg.Tries; try++ {
		if out, locked := c.checkLocked(); locked {
			return out
		}
		prompt := c.cfg.Sounds.Prompt
		if wrong {
			prompt = c.cfg.Sounds.Incorrect // it asks for the passcode again itself
		}
		digits, _, err := c.s.GetData(ctx, prompt, c.cfg.DigitTimeout, maxPasscodeDigits)
		if err != nil {
			return c.broke(err, fmt.Sprintf("passcode try %d", try))
		}
		if digits == "" {
			c.audit("passcode", ResultDenied, ReasonNoPasscode, fmt.Sprintf("try %d: nothing keyed", try))
			wrong = false
			continue
		}
		keyed, wrong = true, true
		acct, out, done := c.verify(ctx, digits, try)
		if done {
			return out
		}
		if acct != nil {
			return c.admit(ctx, *acct)
		}
	}
	if !keyed {
		return c.end(ResultDenied, ReasonNoPasscode, c.cfg.Sounds.Denied, "nothing keyed")
	}
	return c.end(ResultDenied, ReasonWrongPasscode, c.cfg.Sounds.Denied, fmt.Sprintf("%d tries", c.cfg.Tries))
}

// checkLocked reads the lock of every key before a try, so a lock set by
// another call while this one was keying holds at once.
func (c *call) checkLocked() (Outcome, bool) {
	var until time.Time
	err := c.deps.Store.View(func(tx store.Tx) error {
		for _, k := range c.keys() {
			_, u, err := c.policy().Remaining(tx, k, c.now())
			if err != nil {
				return err
			}
			if u.After(until) {
				until = u
			}
		}
		return nil
	})
	if err != nil {
		return c.end(ResultError, ReasonStore, c.cfg.Sounds.Failed, "lockout check: "+err.Error()), true
	}
	if !until.IsZero() {
		return c.end(ResultLocked, ReasonLocked, c.cfg.Sounds.Locked, "locked until "+until.UTC().Format(time.RFC3339)), true
	}
	return Outcome{}, false
}

func (c *call) policy() auth.LockoutPolicy {
	return auth.LockoutPolicy{MaxFailures: c.cfg.MaxFailures, Window: c.cfg.FailureWindow, LockFor: c.cfg.LockFor}
}

// keys are the lockout keys of this call: what belongs to this caller
// alone. Never the channel's peer, which a whole trunk shares.
func (c *call) keys() []string {
	var ks []string
	if c.hasCID {
		ks = append(ks, "cid:"+c.cid)
	}
	switch {
	case c.id.bound:
		ks = append(ks, "bound:"+c.id.acct.Name)
	case c.id.number != "":
		// The keyed number, whether an account has it or not: a number
		// nobody has locks the same way, so "locked" never tells a
		// guesser that a number exists.
		ks = append(ks, "num:"+c.id.number)
	}
	return ks
}

// verify checks one keyed passcode against the identified account: rate
// limits, a reserved try, one hash. It returns the account on success; done
// when the call ends here; neither for a wrong passcode with tries left.
func (c *call) verify(ctx context.Context, digits string, try int) (*store.Account, Outcome, bool) {
	if ok, which := c.limits.allow(c.cfg, c.id.limitKey(), c.now()); !ok {
		return nil, c.end(ResultDenied, ReasonRateLimited, c.cfg.Sounds.Failed, which+" rate limit reached"), true
	}
	keys := c.keys()
	until, ok, err := c.inflight.reserve(ctx, c.deps.Store, c.policy(), keys, c.now, c.cfg.DigitTimeout)
	switch {
	case errors.Is(err, errBusy):
		return nil, c.end(ResultDenied, ReasonRateLimited, c.cfg.Sounds.Failed, err.Error()), true
	case err != nil && (ctx.Err() != nil || c.s.HungUp()):
		return nil, c.broke(err, fmt.Sprintf("passcode try %d", try)), true
	case err != nil:
		return nil, c.end(ResultError, ReasonStore, c.cfg.Sounds.Failed, "lockout: "+err.Error()), true
	case !ok:
		return nil, c.end(ResultLocked, ReasonLocked, c.cfg.Sounds.Locked, "locked until "+until.UTC().Format(time.RFC3339)), true
	}
	released := false
	release := func() {
		if !released {
			released = true
			c.inflight.release(keys)
		}
	}
	defer release()

	hash := c.dummy
	real := c.id.found && c.id.acct.Enabled && c.id.acct.PasscodeHash != ""
	if real {
		hash = c.id.acct.PasscodeHash
	}
	matched := false
	var merr error
	if auth.ValidatePasscode(digits) == nil {
		matched, merr = c.check(ctx, digits, hash)
	}
	if matched && real && merr == nil {
		// Audited with the outcome, after the grant: a store write here
		// would sit between the last digit and the open door.
		c.try = try
		return &c.id.acct, Outcome{}, false
	}
	// Everything else counts as a failure, errors included: a fault that
	// skipped the count would hand out free guesses.
	var lockedNow bool
	ferr := c.deps.Store.Update(func(tx store.Tx) (err error) {
		lockedNow, err = c.policy().Fail(tx, keys, c.now())
		return err
	})
	release()
	if ferr != nil {
		return nil, c.end(ResultError, ReasonStore, c.cfg.Sounds.Failed, "record failure: "+ferr.Error()), true
	}
	if merr != nil {
		if ctx.Err() != nil || c.s.HungUp() {
			return nil, c.broke(merr, fmt.Sprintf("passcode try %d", try)), true
		}
		return nil, c.end(ResultError, ReasonStore, c.cfg.Sounds.Failed, fmt.Sprintf("try %d: %v", try, merr)), true
	}
	c.audit("passcode", ResultDenied, ReasonWrongPasscode, fmt.Sprintf("try %d: wrong passcode (%d digits)", try, len(digits)))
	if lockedNow {
		return nil, c.end(ResultLocked, ReasonLocked, c.cfg.Sounds.Locked,
			fmt.Sprintf("%d failures within %s", c.cfg.MaxFailures, c.cfg.FailureWindow)), true
	}
	if try == c.cfg.Tries {
		return nil, c.end(ResultDenied, ReasonWrongPasscode, c.cfg.Sounds.Denied, fmt.Sprintf("%d tries", c.cfg.Tries)), true
	}
	return nil, Outcome{}, false
}

// admit finds the caller's addresses and grants them.
func (c *call) admit(ctx context.Context, acct store.Account) Outcome {
	ips, source, err := c.addresses(ctx, acct)
	if err != nil {
		if errors.Is(err, agi.ErrHangup) || c.s.HungUp() {
			return c.broke(err, "address")
		}
		return c.end(ResultDenied, ReasonNoAddress, c.cfg.Sounds.Failed, err.Error())
	}
	if len(ips) == 0 {
		return c.end(ResultDenied, ReasonNoAddress, c.cfg.Sounds.Failed, "no address found for the caller")
	}
	if max := cmpOr(acct.MaxGrants, c.cfg.MaxGrants); len(ips) > max {
		// Several registered contacts: grant as many as the account may
		// hold, not more (each would evict the one before).
		c.deps.Log.Info("door: more contacts than max_grants; granting the first", "account", acct.Name, "contacts", len(ips), "max_grants", max)
		ips = ips[:max]
	}
	var granted []store.Grant
	var admitted, refused, failed []string
	for _, ip := range ips {
		g, err := c.deps.Grant(ctx, GrantRequest{Account: acct.Name, IP: ip, Source: "phone:" + source, CallerID: c.callerID, Channel: c.channel})
		switch {
		case err == nil:
			granted = append(granted, g)
		case errors.Is(err, ErrAdmitted):
			admitted = append(admitted, err.Error())
		case errors.Is(err, auth.ErrNotGrantable):
			refused = append(refused, err.Error())
		default:
			failed = append(failed, err.Error())
		}
	}
	switch {
	case len(granted) > 0:
		c.audit("door", ResultGranted, ReasonGranted, fmt.Sprintf("passcode right on try %d; %d address(es) from %s", c.try, len(granted), source))
		c.announce(ctx, granted[0].Expires.Sub(c.now()))
		return Outcome{Result: ResultGranted, Reason: ReasonGranted}
	case len(failed) > 0:
		return c.end(ResultError, ReasonGrantFailed, c.cfg.Sounds.Failed, strings.Join(failed, "; "))
	case len(admitted) > 0:
		return c.end(ResultLAN, ReasonAdmitted, c.cfg.Sounds.Admitted, strings.Join(admitted, "; "))
	}
	return c.end(ResultDenied, ReasonNotGrantable, c.cfg.Sounds.Failed, strings.Join(refused, "; "))
}

// announce tells the caller how long access lasts, in words a core-sounds
// Asterisk can say: "5 hours and 30 minutes", "90 minutes", "1 minute".
func (c *call) announce(ctx context.Context, left time.Duration) {
	if c.s.HungUp() {
		return
	}
	c.say(ctx, c.cfg.Sounds.Granted)
	for _, part := range spokenDuration(left, c.cfg.Sounds) {
		if c.s.HungUp() {
			return
		}
		if part.number >= 0 {
			_ = c.s.SayNumber(ctx, part.number, "")
		} else {
			c.say(ctx, part.sound)
		}
	}
}

// spokenPart is a number to say (number >= 0) or a sound to play.
type spokenPart struct {
	number int
	sound  string
}

// spokenDuration words a lifetime. Core sounds have "hours" but no "hour",
// so anything under two hours is said in minutes.
func spokenDuration(d time.Duration, s Sounds) []spokenPart {
	mins := int(d.Round(time.Minute) / time.Minute)
	if mins < 1 {
		mins = 1
	}
	unit := func(n int) string {
		if n == 1 {
			return s.Minute
		}
		return s.Minutes
	}
	if mins < 120 {
		return []spokenPart{{number: mins}, {number: -1, sound: unit(mins)}}
	}
	h, m := mins/60, mins%60
	out := []spokenPart{{number: h}, {number: -1, sound: s.Hours}}
	if m > 0 {
		out = append(out, spokenPart{number: -1, sound: s.And}, spokenPart{number: m}, spokenPart{number: -1, sound: unit(m)})
	}
	return out
}

// addresses finds where to grant, first that applies: an address the
// dialplan passed as the first AGI argument, the account's registered
// contacts, the calling channel's address, or one the caller keys in.
func (c *call) addresses(ctx context.Context, acct store.Account) ([]netip.Addr, string, error) {
	if len(c.s.Env.Args) > 0 && strings.TrimSpace(c.s.Env.Args[0]) != "" {
		a, err := ParseHostAddr(c.s.Env.Args[0])
		if err != nil {
			return nil, "", fmt.Errorf("agi argument: %w", err)
		}
		return []netip.Addr{a}, "argument", nil
	}
	if lk := c.contactLookup(); lk != nil && acct.Extension != "" {
		addrs, err := lk.RegisteredAddrs(ctx, acct.Extension)
		if err == nil && len(addrs) > 0 {
			return addrs, "contact", nil
		}
		// AMI down or nothing registered: never block the call on it.
		c.deps.Log.Warn("door: registered-contact lookup failed; using the channel address", "extension", acct.Extension, "err", err)
	}
	for _, v := range addrVarsFor(c.channel) {
		val, set, err := c.s.GetVariable(ctx, v)
		if errors.Is(err, agi.ErrHangup) {
			return nil, "", err
		}
		if err != nil || !set || strings.TrimSpace(val) == "" {
			continue // this channel driver lacks the function; try the next
		}
		a, err := ParseHostAddr(val)
		if err != nil {
			c.deps.Log.Warn("door: unusable channel address", "variable", v, "value", val)
			continue
		}
		return []netip.Addr{a}, "channel", nil
	}
	if acct.MayKeyIP {
		a, err := c.keyIP(ctx)
		if err != nil {
			return nil, "", err
		}
		return []netip.Addr{a}, "keyed", nil
	}
	return nil, "", nil
}

// keyIP lets the caller key an IPv4 address, '*' for the dots, reads it
// back octet by octet with "dot" between (203.0.113.1 and 20.30.11.31
// must not sound alike) and waits for '#' to confirm.
func (c *call) keyIP(ctx context.Context) (netip.Addr, error) {
	for try := 1; try <= c.cfg.Tries; try++ {
		digits, _, err := c.s.GetData(ctx, c.cfg.Sounds.IPPrompt, 2*c.cfg.DigitTimeout, maxIPDigits)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("keyed address: %w", err)
		}
		a, err := netip.ParseAddr(strings.ReplaceAll(digits, "*", "."))
		if err != nil || !a.Is4() {
			c.say(ctx, c.cfg.Sounds.Incorrect)
			continue
		}
		c.say(ctx, c.cfg.Sounds.YouEntered)
		for i, octet := range strings.Split(a.String(), ".") {
			if i > 0 {
				c.say(ctx, c.cfg.Sounds.Dot)
			}
			if err := c.s.SayDigits(ctx, octet, ""); err != nil {
				return netip.Addr{}, fmt.Errorf("keyed address: %w", err)
			}
		}
		d, err := c.s.WaitForDigit(ctx, c.cfg.DigitTimeout)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("keyed address: %w", err)
		}
		if d == '#' {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("keyed address: not confirmed")
}
