package ami

import (
	"errors"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap them, so test with
// errors.Is; a *ActionError additionally carries the response Asterisk sent.
var (
	// ErrAuth means Asterisk refused the login: wrong username or secret,
	// or an address manager.conf does not permit. Asterisk answers after
	// about a second and closes the connection.
	ErrAuth = errors.New("ami: authentication failed")

	// ErrActionFailed means Asterisk answered an action with
	// "Response: Error". Every *ActionError matches it.
	ErrActionFailed = errors.New("ami: action failed")

	// ErrUnknownAction means Asterisk does not know the action, typically
	// because the module providing it is not loaded (PJSIP actions on a
	// chan_sip-only build). Errors matching it also match ErrActionFailed.
	ErrUnknownAction = errors.New("ami: unknown action")

	// ErrNotFound means Asterisk does not know the SIP peer or PJSIP
	// endpoint that a lookup asked about.
	ErrNotFound = errors.New("ami: no such peer or endpoint")

	// ErrNotConnected means there was no logged-in connection when the
	// call was made: the client is between connections (Run mode), or its
	// only connection has ended (Dial mode). Nothing was sent.
	ErrNotConnected = errors.New("ami: not connected")

	// ErrConnectionLost means the connection ended after the action was
	// sent and before its answer arrived. Asterisk may or may not have
	// carried it out.
	ErrConnectionLost = errors.New("ami: connection lost")

	// ErrClosed means the Client has been closed.
	ErrClosed = errors.New("ami: client closed")

	// ErrMessageTooLarge means Asterisk sent a message longer than
	// Config.MaxMessageBytes. The connection cannot resynchronise after it
	// and is closed.
	ErrMessageTooLarge = errors.New("ami: message too large")

	// ErrListTooLarge means an action's event list went over
	// Config.MaxListEvents or Config.MaxListBytes. The call fails as soon
	// as it does; the rest of the list is dropped as it arrives, and the
	// connection stays up.
	ErrListTooLarge = errors.New("ami: event list too large")

	// ErrProtocol means the peer sent something that is not AMI: a bad
	// banner, or a line that is not "Key: Value". The connection is closed.
	ErrProtocol = errors.New("ami: protocol error")

	// ErrInvalidHeader means an action was refused before anything was
	// sent: a key or value holds CR, LF or NUL (which would let it smuggle
	// a second action to Asterisk), a key is empty or holds ':', or a
	// header the client sets itself (Action, ActionID) was passed in.
	ErrInvalidHeader = errors.New("ami: invalid header")
)

// ActionError is a "Response: Error" from Asterisk.
//
// Action holds only the action's name, never the headers that were sent:
// errors end up in logs, and headers may carry secrets.
type ActionError struct {
	Action   string
	Response Message
}

// Message returns Asterisk's explanation, e.g. "Authentication failed".
func (e *ActionError) Message() string { return e.Response.Get("Message") }

func (e *ActionError) Error() string {
	msg := e.Message()
	if msg == "" {
		msg = "error without a message"
	}
	return "ami: " + e.Action + ": " + msg
}

// Is makes an ActionError match ErrActionFailed, ErrAuth for a failed
// Login, and ErrUnknownAction when Asterisk does not know the action.
func (e *ActionError) Is(target error) bool {
	switch target {
	case ErrActionFailed:
		return true
	case ErrAuth:
		return strings.EqualFold(e.Action, "Login")
	case ErrUnknownAction:
		// Asterisk 20: "Invalid/unknown command: X. Use Action:
		// ListCommands to show available commands."
		return strings.HasPrefix(e.Message(), "Invalid/unknown command")
	}
	return false
}
