package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/store"
)

// Values of the DIALGATE_RESULT channel variable, for dialplans.
const (
	ResultGranted = "granted"
	ResultDenied  = "denied"
	ResultLocked  = "locked"
	ResultError   = "error"
)

// ContactLookup finds the addresses an account's SIP extension is
// registered from. The AMI client provides it; without one the door uses
// the calling channel's own address.
type ContactLookup interface {
	RegisteredAddrs(ctx context.Context, extension string) ([]netip.Addr, error)
}

// door is the phone door: the FastAGI handler for /authorize.
type door struct {
	d       *Daemon
	matcher *auth.Matcher
	limiter *auth.RateLimiter
	lookup  ContactLookup
}

// addrVarsFor returns the channel functions that carry the caller's
// address for the channel's driver, best first, so the caller waits for
// no query that cannot answer: chan_pjsip's remote address, chan_sip's
// received and peer addresses; all of them for a driver not known here.
func addrVarsFor(channel string) []string {
	pjsip := []string{"CHANNEL(pjsip,remote_addr)"}
	sip := []string{"CHANNEL(recvip)", "CHANNEL(peerip)"}
	switch {
	case strings.HasPrefix(channel, "PJSIP/"):
		return pjsip
	case strings.HasPrefix(channel, "SIP/"):
		return sip
	}
	return append(pjsip, sip...)
}

const (
	maxPasscodeDigits = 20
	maxIPDigits       = 15 // 255*255*255*255
)

// call is one caller's way through the door.
type call struct {
	*door
	s        *agi.Session
	cfg      DoorConfig
	callerID string
	channel  string
	keys     []string
	try      int // the try on which the passcode was accepted
}

// accepted clears the caller's failures and audits the accepted
// passcode. It runs after the grant: the caller is waiting for the
// kernel, and neither step changes what the kernel must do.
func (c *call) accepted(acct store.Account) {
	if err := c.d.db.Update(func(tx store.Tx) error { return c.policy().Succeed(tx, c.keys) }); err != nil {
		c.d.log.Error("door: clear lockout", "err", err)
	}
	c.audit("passcode", acct.Name, c.callerID, "ok", fmt.Sprintf("try %d", c.try))
}

// ServeAGI implements agi.Handler.
func (dr *door) ServeAGI(ctx context.Context, s *agi.Session) {
	c := &call{door: dr, s: s, cfg: dr.d.config().Door, callerID: s.Env.CallerID, channel: s.Env.Channel}
	c.keys = auth.LockoutKeys(c.callerID, c.channel)
	dr.d.metrics.agiSessions.Inc()
	dr.d.metrics.agiActive.Inc()
	defer dr.d.metrics.agiActive.Dec()
	result := c.run(ctx)
	dr.d.metrics.doorCalls.WithLabelValues(result).Inc()
	// SET VARIABLE still works after a hangup, so the dialplan's h
	// extension can see the outcome.
	if err := s.SetVariable(ctx, "DIALGATE_RESULT", result); err != nil && !errors.Is(err, agi.ErrHangup) {
		dr.d.log.Debug("door: set result", "err", err)
	}
	if !s.HungUp() {
		_ = s.Hangup(ctx)
	}
}

func (c *call) audit(action, account, subject, result, detail string) {
	c.d.audit(store.AuditRecord{Action: action, Actor: "phone", Account: account, Subject: subject, Result: result,
		Detail: fmt.Sprintf("callerid=%q channel=%q %s", c.callerID, c.channel, detail)})
	lvl := c.d.log.Info
	if result != "ok" {
		lvl = c.d.log.Warn
	}
	lvl("door", "action", action, "account", account, "subject", subject, "result", result,
		"callerid", c.callerID, "channel", c.channel, "detail", detail)
}

// say plays a sound, ignoring failures: the caller may have hung up, and
// nothing they hear changes what was decided.
func (c *call) say(ctx context.Context, sound string) {
	if !c.s.HungUp() {
		_, _ = c.s.StreamFile(ctx, sound, "")
	}
}

func (c *call) run(ctx context.Context) string {
	if err := c.s.Answer(ctx); err != nil {
		c.audit("door", "", c.callerID, ResultError, "answer: "+err.Error())
		return ResultError
	}
	if until, locked, err := c.locked(); err != nil {
		c.audit("door", "", c.callerID, ResultError, "lockout check: "+err.Error())
		c.say(ctx, c.cfg.Sounds.Failed)
		return ResultError
	} else if locked {
		c.audit("door", "", c.callerID, ResultLocked, "locked until "+until.Format(time.RFC3339))
		c.say(ctx, c.cfg.Sounds.Locked)
		return ResultLocked
	}
	acct, result := c.passcode(ctx)
	if result != "" {
		return result
	}
	defer c.accepted(acct)
	ips, source, err := c.addresses(ctx, acct)
	if err != nil || len(ips) == 0 {
		if err == nil {
			err = errors.New("no address found for the caller")
		}
		c.audit("door", acct.Name, c.callerID, ResultError, err.Error())
		c.say(ctx, c.cfg.Sounds.Failed)
		return ResultError
	}
	if max := cmp.Or(acct.MaxGrants, c.cfg.MaxGrants); len(ips) > max {
		// Several registered contacts: grant as many as the account may
		// hold, not more (each would evict the one before).
		c.d.log.Info("door: more contacts than max_grants; granting the first", "account", acct.Name, "contacts", len(ips), "max_grants", max)
		ips = ips[:max]
	}
	var granted []store.Grant
	for _, ip := range ips {
		g, err := c.d.Grant(ctx, GrantRequest{Account: acct.Name, IP: ip, Source: "phone:" + source, CallerID: c.callerID, Channel: c.channel})
		if err != nil {
			continue // Grant audited the refusal
		}
		granted = append(granted, g)
	}
	if len(granted) == 0 {
		c.say(ctx, c.cfg.Sounds.Failed)
		return ResultDenied
	}
	c.announce(ctx, granted[0].Expires.Sub(c.d.now()))
	return ResultGranted
}

func (c *call) locked() (until time.Time, locked bool, err error) {
	err = c.d.db.View(func(tx store.Tx) error {
		until, locked, err = c.policy().Locked(tx, c.keys, c.d.now())
		return err
	})
	return until, locked, err
}

func (c *call) policy() auth.LockoutPolicy {
	return auth.LockoutPolicy{MaxFailures: c.cfg.MaxFailures, Window: c.cfg.FailureWindow.Duration, LockFor: c.cfg.LockFor.Duration}
}

// passcode collects and checks the passcode. It returns the account, or
// a non-empty result when the call ends here.
func (c *call) passcode(ctx context.Context) (store.Account, string) {
	for try := 1; try <= c.cfg.Tries; try++ {
		digits, _, err := c.s.GetData(ctx, c.cfg.Sounds.Prompt, c.cfg.DigitTimeout.Duration, maxPasscodeDigits)
		if err != nil {
			c.audit("door", "", c.callerID, ResultDenied, fmt.Sprintf("try %d: %v", try, err))
			return store.Account{}, ResultDenied
		}
		if digits == "" {
			c.audit("door", "", c.callerID, ResultDenied, fmt.Sprintf("try %d: no digits", try))
			continue
		}
		if !c.limiter.Allow(c.d.now()) {
			c.audit("door", "", c.callerID, ResultDenied, "global passcode rate limit reached")
			c.say(ctx, c.cfg.Sounds.Failed)
			return store.Account{}, ResultDenied
		}
		acct, ok, err := c.match(ctx, digits)
		if err != nil {
			c.audit("door", "", c.callerID, ResultError, fmt.Sprintf("try %d: %v", try, err))
			c.say(ctx, c.cfg.Sounds.Failed)
			return store.Account{}, ResultError
		}
		if ok {
			c.try = try
			return acct, ""
		}
		var lockedNow bool
		err = c.d.db.Update(func(tx store.Tx) (err error) {
			lockedNow, err = c.policy().Fail(tx, c.keys, c.d.now())
			return err
		})
		if err != nil {
			c.d.log.Error("door: record failure", "err", err)
		}
		// The digits are never logged: only that they were wrong.
		c.audit("passcode", "", c.callerID, ResultDenied, fmt.Sprintf("try %d: wrong passcode (%d digits)", try, len(digits)))
		if lockedNow {
			c.audit("door", "", c.callerID, ResultLocked, fmt.Sprintf("%d failures within %s", c.cfg.MaxFailures, c.cfg.FailureWindow.Duration))
			c.say(ctx, c.cfg.Sounds.Locked)
			return store.Account{}, ResultLocked
		}
		c.say(ctx, c.cfg.Sounds.Incorrect)
	}
	return store.Account{}, ResultDenied
}

// match checks digits against every enabled account with a passcode.
func (c *call) match(ctx context.Context, digits string) (store.Account, bool, error) {
	if auth.ValidatePasscode(digits) != nil {
		return store.Account{}, false, nil
	}
	byName := map[string]store.Account{}
	var cands []auth.Candidate
	err := c.d.db.View(func(tx store.Tx) error {
		as, err := tx.Accounts()
		for _, a := range as {
			if a.Enabled && a.PasscodeHash != "" {
				byName[a.Name] = a
				cands = append(cands, auth.Candidate{Account: a.Name, Hash: a.PasscodeHash})
			}
		}
		return err
	})
	if err != nil {
		return store.Account{}, false, err
	}
	name, ok, err := c.matcher.Match(ctx, digits, cands)
	if err != nil || !ok {
		return store.Account{}, false, err
	}
	return byName[name], true, nil
}

// addresses finds where to grant, first that applies: an address the
// dialplan passed as the first AGI argument, the account's registered
// contacts, the calling channel's address, or one the caller keys in.
func (c *call) addresses(ctx context.Context, acct store.Account) ([]netip.Addr, string, error) {
	if len(c.s.Env.Args) > 0 && strings.TrimSpace(c.s.Env.Args[0]) != "" {
		a, err := parseHostAddr(c.s.Env.Args[0])
		if err != nil {
			return nil, "", fmt.Errorf("agi argument: %w", err)
		}
		return []netip.Addr{a}, "argument", nil
	}
	if c.lookup != nil && acct.Extension != "" {
		addrs, err := c.lookup.RegisteredAddrs(ctx, acct.Extension)
		if err == nil && len(addrs) > 0 {
			return addrs, "contact", nil
		}
		// AMI down or nothing registered: never block the call on it.
		c.d.log.Warn("door: registered-contact lookup failed; using the channel address", "extension", acct.Extension, "err", err)
	}
	for _, v := range addrVarsFor(c.channel) {
		val, set, err := c.s.GetVariable(ctx, v)
		if err != nil {
			continue // this channel driver lacks the function; try the next
		}
		if !set || strings.TrimSpace(val) == "" {
			continue
		}
		a, err := parseHostAddr(val)
		if err != nil {
			c.d.log.Warn("door: unusable channel address", "variable", v, "value", val)
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
// back digit by digit and waits for '#' to confirm.
func (c *call) keyIP(ctx context.Context) (netip.Addr, error) {
	for try := 1; try <= c.cfg.Tries; try++ {
		digits, _, err := c.s.GetData(ctx, c.cfg.Sounds.IPPrompt, 2*c.cfg.DigitTimeout.Duration, maxIPDigits)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("keyed address: %w", err)
		}
		a, err := netip.ParseAddr(strings.ReplaceAll(digits, "*", "."))
		if err != nil || !a.Is4() {
			c.say(ctx, c.cfg.Sounds.Incorrect)
			continue
		}
		if err := c.s.SayDigits(ctx, strings.ReplaceAll(digits, "*", ""), ""); err != nil {
			return netip.Addr{}, fmt.Errorf("keyed address: %w", err)
		}
		d, err := c.s.WaitForDigit(ctx, c.cfg.DigitTimeout.Duration)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("keyed address: %w", err)
		}
		if d == '#' {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("keyed address: not confirmed")
}

// announce tells the caller how long access lasts: "N hours" (or
// minutes for short lifetimes).
func (c *call) announce(ctx context.Context, left time.Duration) {
	if c.s.HungUp() {
		return
	}
	c.say(ctx, c.cfg.Sounds.Granted)
	n, unit := int(left.Round(time.Hour)/time.Hour), c.cfg.Sounds.Hours
	if left < time.Hour {
		n, unit = int(left.Round(time.Minute)/time.Minute), c.cfg.Sounds.Minutes
	}
	_ = c.s.SayNumber(ctx, n, "")
	c.say(ctx, unit)
	c.say(ctx, c.cfg.Sounds.Goodbye)
}

// parseHostAddr reads an address as Asterisk and AMI print them:
// "203.0.113.7", "203.0.113.7:5060", "[2001:db8::7]:5060" or
// "2001:db8::7". Anything else is refused.
func parseHostAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil && a.Zone() == "" {
		return a.Unmap(), nil
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
}
