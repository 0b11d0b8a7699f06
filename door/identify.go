package door

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dialgate/dialgate/store"
)

// identity is who the door thinks is calling, before any passcode.
type identity struct {
	acct   store.Account
	found  bool   // false: an unknown account number (checked against the dummy hash)
	bound  bool   // identified without keying (own extension, bound caller ID)
	number string // the account number keyed, if any (found or not)
	how    string // "extension", "callerid", "number", "" before identify
}

// limitKey is the rate-limit bucket of the identity: its own for a bound
// identity, the shared one for everyone who keyed a number.
func (id identity) limitKey() string {
	if id.bound {
		return id.acct.Name
	}
	return ""
}

// identify decides which account the caller is, without hashing: the
// calling endpoint, then the caller ID, then a keyed account number.
func (c *call) identify(ctx context.Context) (Outcome, bool) {
	ext := endpointOf(c.channel)
	var id identity
	err := c.deps.Store.View(func(tx store.Tx) error {
		if ext != "" {
			as, err := tx.AccountsByExtension(ext)
			if err != nil {
				return err
			}
			var enabled []store.Account
			for _, a := range as {
				if a.Enabled && a.PasscodeHash != "" {
					enabled = append(enabled, a)
				}
			}
			if len(enabled) == 1 {
				id = identity{acct: enabled[0], found: true, bound: true, how: "extension"}
				return nil
			}
		}
		if c.hasCID {
			a, err := tx.AccountByCallerID(c.cid)
			switch {
			case err == nil && a.Enabled && a.PasscodeHash != "":
				id = identity{acct: a, found: true, bound: true, how: "callerid"}
				return nil
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return err
			}
			// Bound to an account that cannot be used (disabled, no
			// passcode): the caller may still key another account's number.
		}
		return nil
	})
	if err != nil {
		return c.end(ResultError, ReasonStore, c.cfg.Sounds.Failed, "identify: "+err.Error()), true
	}
	if id.found {
		c.id = id
		return Outcome{}, false
	}
	for try := 1; try <= c.cfg.Tries; try++ {
		digits, _, err := c.s.GetData(ctx, c.cfg.Sounds.AccountPrompt, c.cfg.DigitTimeout, maxNumberDigits)
		if err != nil {
			return c.broke(err, "account number"), true
		}
		if digits == "" {
			continue
		}
		c.id = identity{how: "number", number: digits}
		err = c.deps.Store.View(func(tx store.Tx) error {
			a, err := tx.AccountByNumber(digits)
			if err == nil {
				c.id.acct, c.id.found = a, true
			}
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return c.end(ResultError, ReasonStore, c.cfg.Sounds.Failed, "identify: "+err.Error()), true
		}
		if !c.id.found {
			// Not said to the caller: the passcode is asked for all the
			// same, so a guesser cannot tell numbers that exist.
			c.deps.Log.Info("door: unknown account number", "number", digits, "callerid", c.callerID)
		}
		return Outcome{}, false
	}
	return c.end(ResultDenied, ReasonNoPasscode, c.cfg.Sounds.Denied, "no account number keyed"), true
}

// endpointOf returns the SIP/PJSIP/IAX2 endpoint of a channel name
// ("PJSIP/201-0000002a" -> "201"), or "" for other channels (Local, DAHDI):
// only a SIP endpoint is authenticated by Asterisk as one device.
func endpointOf(channel string) string {
	tech, rest, ok := strings.Cut(strings.TrimSpace(channel), "/")
	if !ok {
		return ""
	}
	switch strings.ToUpper(tech) {
	case "SIP", "PJSIP", "IAX2":
	default:
		return ""
	}
	if i := strings.LastIndexByte(rest, '-'); i > 0 && isHex(rest[i+1:]) {
		rest = rest[:i]
	}
	if strings.ContainsAny(rest, "@/;") {
		return ""
	}
	return rest
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// String is for logs.
func (id identity) String() string {
	if !id.found {
		return fmt.Sprintf("unknown (%s)", id.how)
	}
	return fmt.Sprintf("%s (%s)", id.acct.Name, id.how)
}
