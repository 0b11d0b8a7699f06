package dialplan

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Defaults for Options.
const (
	DefaultAGIURL    = "agi://127.0.0.1:4573/authorize"
	DefaultExtension = "*47"
	DefaultContext   = "from-internal-custom" // FreePBX includes it in from-internal
)

// AuthorizeContext is the context Generate writes the phone door into.
// FreePBX custom destinations point at AuthorizeContext + ",s,1".
const AuthorizeContext = "dialgate-authorize"

// ErrOption is wrapped by every error about an Options value, so callers
// can tell a bad setting (the admin's to fix) from an I/O failure.
var ErrOption = errors.New("invalid dialplan option")

// Options says what the generated dialplan looks like. The zero value is
// the FreePBX setup: *47 in from-internal-custom, FastAGI on loopback.
type Options struct {
	// AGIURL is the FastAGI URL of dialgate's door; DefaultAGIURL when
	// empty. Only agi:// URLs: the text goes into the AGI() argument list
	// verbatim, so characters the dialplan would interpret (',', '$', ';',
	// quotes, parentheses, spaces) are refused rather than escaped.
	AGIURL string

	// Extension is the access extension callers dial; DefaultExtension
	// when empty. 1 to 20 of 0-9 A-Z a-z * # +. Refused: patterns (a
	// leading '_' would let the door swallow other numbers, and in
	// from-internal-custom, which FreePBX searches before everything
	// else, that means ordinary calls), '-' (Asterisk ignores dashes when
	// matching, so "*4-7" would silently be *47), and Asterisk's special
	// extension names (s, h, i, t, T, o, a, e, fax, talk).
	Extension string

	// Context is where the access extension goes; DefaultContext when
	// empty. 1 to 79 of A-Z a-z 0-9 _ - (Asterisk's limit is 79), and not
	// "general" or "globals", which extensions.conf treats as settings
	// sections, nor AuthorizeContext itself.
	Context string

	// NoAccessExtension leaves the access extension out, for an admin
	// who routes calls to the door some other way (a FreePBX Misc
	// Application or Custom Destination pointing at dialgate-authorize,s,1,
	// an inbound route). Extension and Context are then ignored.
	NoAccessExtension bool

	// PassAddress makes the dialplan pass the calling SIP channel's own
	// address (CHANNEL(pjsip,remote_addr) or CHANNEL(recvip)) as the first
	// AGI argument. Off by default because the door finds the address
	// itself and does better: an address passed here wins over the
	// account's registered contact (looked up through AMI), and on a call
	// that came in over a trunk it is the provider's address, not the
	// traveller's. Turn it on only when AMI is not available and callers
	// dial from the device that should be let in.
	PassAddress bool
}

// withDefaults fills in the empty fields.
func (o Options) withDefaults() Options {
	if o.AGIURL == "" {
		o.AGIURL = DefaultAGIURL
	}
	if o.Extension == "" {
		o.Extension = DefaultExtension
	}
	if o.Context == "" {
		o.Context = DefaultContext
	}
	return o
}

// Validate reports whether o (with defaults applied) can be written into
// a dialplan. Everything here ends up in extensions.conf, where a newline
// starts a new statement and ';' a comment, so the checks are allowlists.
func (o Options) Validate() error {
	o = o.withDefaults()
	if err := validateAGIURL(o.AGIURL); err != nil {
		return err
	}
	if o.NoAccessExtension {
		return nil
	}
	if err := validateExtension(o.Extension); err != nil {
		return err
	}
	return validateContext(o.Context)
}

// specialExtensions are the names Asterisk gives meaning to; an access
// extension by one of these names would catch hangups, invalid numbers or
// timeouts of every call in the context instead of being dialled.
var specialExtensions = []string{"s", "h", "i", "t", "o", "a", "e", "fax", "talk"}

func validateExtension(ext string) error {
	if len(ext) < 1 || len(ext) > 20 {
		return fmt.Errorf("%w: extension %q: want 1 to 20 characters", ErrOption, ext)
	}
	for _, r := range ext {
		switch {
		case r >= '0' && r <= '9', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r == '*', r == '#', r == '+':
		case r == '_':
			return fmt.Errorf("%w: extension %q: '_' makes an Asterisk pattern; the access extension must be one number", ErrOption, ext)
		case r == '-':
			return fmt.Errorf("%w: extension %q: Asterisk ignores '-' in extensions; leave it out", ErrOption, ext)
		default:
			return fmt.Errorf("%w: extension %q: character %q not allowed (want 0-9 A-Z a-z * # +)", ErrOption, ext, r)
		}
	}
	for _, s := range specialExtensions {
		if strings.EqualFold(ext, s) {
			return fmt.Errorf("%w: extension %q: Asterisk reserves that name", ErrOption, ext)
		}
	}
	return nil
}

func validateContext(ctx string) error {
	if len(ctx) < 1 || len(ctx) > 79 {
		return fmt.Errorf("%w: context %q: want 1 to 79 characters", ErrOption, ctx)
	}
	for _, r := range ctx {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '_' || r == '-') {
			return fmt.Errorf("%w: context %q: character %q not allowed (want A-Z a-z 0-9 _ -)", ErrOption, ctx, r)
		}
	}
	switch strings.ToLower(ctx) {
	case "general", "globals":
		return fmt.Errorf("%w: context %q: extensions.conf reads that section as settings, not dialplan", ErrOption, ctx)
	case AuthorizeContext:
		return fmt.Errorf("%w: context %q: that is the door's own context; the access extension belongs in the context callers dial from", ErrOption, ctx)
	}
	return nil
}

// agiURLChar reports whether r may appear in an AGI URL: the characters
// of a URL that mean nothing to the dialplan parser.
func agiURLChar(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' ||
		strings.ContainsRune("-._~:/?=&%[]", r)
}

func validateAGIURL(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("%w: AGI URL %.40q...: longer than 255 characters", ErrOption, s)
	}
	for _, r := range s {
		if !agiURLChar(r) {
			return fmt.Errorf("%w: AGI URL %q: character %q not allowed", ErrOption, s, r)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: AGI URL %q: %w", ErrOption, s, err)
	}
	if u.Scheme != "agi" {
		return fmt.Errorf("%w: AGI URL %q: want agi://host:port/path", ErrOption, s)
	}
	if u.Opaque != "" || u.User != nil || u.Host == "" {
		return fmt.Errorf("%w: AGI URL %q: want agi://host:port/path", ErrOption, s)
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return fmt.Errorf("%w: AGI URL %q: host %q is neither an IP address nor a host name", ErrOption, s, host)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: AGI URL %q: port %q out of range", ErrOption, s, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%w: AGI URL %q: empty port", ErrOption, s)
	}
	return nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Generate returns the dialplan include: a comment header, the
// [dialgate-authorize] context that answers the call, hands it to the
// FastAGI door and hangs up, and (unless NoAccessExtension) the access
// extension in o.Context that jumps there. Lines end in LF. The text
// holds nothing secret: the door keeps passcodes, the dialplan only
// routes the call.
//
// The output depends on o alone (no date, no version), so installing the
// same options twice changes nothing.
func Generate(o Options) (string, error) {
	if err := o.Validate(); err != nil {
		return "", err
	}
	o = o.withDefaults()

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }

	w("; Generated by dialgate: the phone door. Do not edit by hand:")
	w("; `dialgate dialplan install` rewrites everything between the dialgate")
	w("; markers. To change it, run the install again with other options.")
	w(";")
	if o.NoAccessExtension {
		w("; Calls routed to %s,s,1 reach dialgate's FastAGI door,", AuthorizeContext)
	} else {
		w("; A call to %s in %s reaches dialgate's FastAGI door,", o.Extension, o.Context)
	}
	w("; which asks for a passcode and sets DIALGATE_RESULT to granted, denied,")
	w("; locked, lan (already admitted), hangup or error, and DIALGATE_REASON.")
	w("; Nothing secret is kept in the dialplan.")
	w("")
	w("[%s]", AuthorizeContext)
	w("exten => s,1,Answer()")
	agiArgs := o.AGIURL
	if o.PassAddress {
		// Each channel function is read only on its own driver's
		// channels: the whole argument of an application is expanded
		// before it runs, so an IF() or ExecIf() would evaluate the
		// other driver's function too and log an error on every call.
		w(" same => n,Set(DIALGATE_ADDR=)")
		w(` same => n,GotoIf($["${CHANNEL(channeltype)}" = "PJSIP"]?pjsip)`)
		w(` same => n,GotoIf($["${CHANNEL(channeltype)}" = "SIP"]?sip:agi)`)
		w(" same => n(pjsip),Set(DIALGATE_ADDR=${CHANNEL(pjsip,remote_addr)})")
		w(" same => n,Goto(agi)")
		w(" same => n(sip),Set(DIALGATE_ADDR=${CHANNEL(recvip)})")
		agiArgs += ",${DIALGATE_ADDR}"
		w(" same => n(agi),AGI(%s)", agiArgs)
	} else {
		w(" same => n,AGI(%s)", agiArgs)
	}
	// The door returns without hanging up, so the outcome can be acted on
	// here: DIALGATE_RESULT is granted, denied, locked, lan, hangup or
	// error, DIALGATE_REASON says why. AGISTATUS is FAILURE when the door
	// could not be reached: say so rather than leave the caller in silence.
	w(" same => n,NoOp(dialgate: AGISTATUS=${AGISTATUS} DIALGATE_RESULT=${DIALGATE_RESULT} DIALGATE_REASON=${DIALGATE_REASON})")
	w(` same => n,GotoIf($["${AGISTATUS}" != "SUCCESS"]?unreachable)`)
	w(` same => n,GotoIf($["${DIALGATE_RESULT}" = "hangup"]?done)`)
	w(` same => n,GotoIf($["${DIALGATE_RESULT}" = "locked"]?locked)`)
	w(" same => n,Playback(vm-goodbye)")
	w(" same => n(done),Hangup()")
	w(" same => n(locked),Playback(goodbye)")
	w(" same => n,Hangup()")
	w(" same => n(unreachable),Playback(im-sorry&vm-goodbye)")
	w(" same => n,Hangup()")
	w("exten => h,1,NoOp(dialgate: call ended DIALGATE_RESULT=${DIALGATE_RESULT})")
	if !o.NoAccessExtension {
		w("")
		w("[%s]", o.Context)
		w("exten => %s,1,Goto(%s,s,1)", o.Extension, AuthorizeContext)
	}
	return b.String(), nil
}
