package ami

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults for the zero Config fields.
const (
	DefaultAddr            = "127.0.0.1:5038"
	DefaultDialTimeout     = 10 * time.Second
	DefaultActionTimeout   = 10 * time.Second
	DefaultPingInterval    = 30 * time.Second
	DefaultBackoffMin      = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultMaxMessageBytes = 64 << 10
	DefaultMaxListEvents   = 10_000
	DefaultMaxListBytes    = 8 << 20
	DefaultEventBuffer     = 256
)

// Config configures a Client. Only Username and Secret are required; the
// zero value of every other field means its default. A Config must not
// change once passed to Dial or New.
type Config struct {
	// Addr is Asterisk's manager address, host:port. Default DefaultAddr,
	// where a stock manager.conf listens.
	Addr string

	// TLS, if set, wraps the connection in TLS (manager.conf's
	// tlsenable, usually port 5039). Nil means plain TCP.
	TLS *tls.Config

	// Username and Secret are a manager.conf user and its secret. The
	// secret is never logged and never appears in errors.
	Username, Secret string

	// MD5 logs in with the challenge-response scheme (Action: Challenge,
	// then Login with Key = md5(challenge + secret)), so the secret does
	// not cross the wire. It protects the secret, not the session: use TLS
	// for that.
	MD5 bool

	// Events is the Login action's Events value: "on" (every event the
	// user may read), "off", or a class list such as "system,call".
	// Default "on". Subscribe only sees what this lets through; "off"
	// spares a busy server when only actions are used.
	Events string

	// DialTimeout bounds connecting, reading the banner and logging in.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration

	// ActionTimeout bounds the wait for each action's answer, a whole
	// event list included, unless the call's ctx has a later deadline.
	// Default DefaultActionTimeout.
	ActionTimeout time.Duration

	// PingInterval is how often the connection is checked with a Ping.
	// If the Pong does not arrive within ActionTimeout the connection is
	// taken for dead and closed (and, under Run, re-established): TCP
	// alone can take hours to notice a vanished peer. Default
	// DefaultPingInterval; negative disables the keepalive.
	PingInterval time.Duration

	// BackoffMin and BackoffMax bound the wait between reconnection
	// attempts under Run: it starts at BackoffMin, doubles after each
	// failure up to BackoffMax, and is randomised by up to half so that
	// several clients do not reconnect in step. A refused login waits
	// BackoffMax: retrying a wrong secret quickly only fills the security
	// log (and may get the address banned). Defaults DefaultBackoffMin and
	// DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration

	// Logger receives connection events at Info and Warn, and each action
	// and response at Debug (names and ActionIDs only, never header
	// values). Nil means slog.Default().
	Logger *slog.Logger

	// MaxMessageBytes is the longest message accepted from Asterisk; a
	// longer one fails with ErrMessageTooLarge and closes the connection.
	// Default DefaultMaxMessageBytes.
	MaxMessageBytes int

	// MaxListEvents and MaxListBytes bound the event list one ActionList
	// call collects: at most MaxListEvents events, together at most
	// MaxListBytes bytes. An event counts its header keys and values plus
	// 32 bytes per header and 48 per event, about what it takes in memory
	// (a count of wire bytes would understate lists of many short headers
	// several times over). A list that would go over either bound fails
	// the call at once with ErrListTooLarge, and the events collected so
	// far are released; the rest of that list is read and dropped, and
	// the connection stays up for other actions. Without the bounds a
	// peer that streams list events without end would have them kept
	// until the action timed out. Defaults DefaultMaxListEvents (SIPpeers
	// on a big PBX has a few thousand) and DefaultMaxListBytes; there is
	// no unbounded setting.
	MaxListEvents int
	MaxListBytes  int

	// EventBuffer is the capacity of each subscription's channel. Events
	// that find it full are dropped and counted. Default
	// DefaultEventBuffer.
	EventBuffer int

	// OnStateChange, if set, is called on every change of connection
	// state, one call at a time and in order, with the error that caused
	// a change to Disconnected (nil when Close or Logoff caused it). It
	// runs on the client's own goroutines, which wait for it; it may call
	// the Client.
	OnStateChange func(s State, err error)
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.Username == "" {
		return c, errors.New("ami: Config.Username is empty")
	}
	// A line break in these would inject headers into the Login action.
	if strings.ContainsAny(c.Username, "\r\n\x00") {
		return c, fmt.Errorf("%w: Config.Username contains CR, LF or NUL", ErrInvalidHeader)
	}
	if strings.ContainsAny(c.Secret, "\r\n\x00") {
		return c, fmt.Errorf("%w: Config.Secret contains CR, LF or NUL", ErrInvalidHeader)
	}
	if strings.ContainsAny(c.Events, "\r\n\x00") {
		return c, fmt.Errorf("%w: Config.Events contains CR, LF or NUL", ErrInvalidHeader)
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Events == "" {
		c.Events = "on"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ActionTimeout <= 0 {
		c.ActionTimeout = DefaultActionTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxListEvents <= 0 {
		c.MaxListEvents = DefaultMaxListEvents
	}
	if c.MaxListBytes <= 0 {
		c.MaxListBytes = DefaultMaxListBytes
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	return c, nil
}
