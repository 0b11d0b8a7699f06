package agi

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap them, so test with
// errors.Is; a *ReplyError additionally carries the reply Asterisk sent.
var (
	// ErrHangup means the channel is gone: Asterisk answered 511 (a command
	// not permitted on a dead channel), a media command returned result=-1,
	// or the connection ended after Asterisk had sent its HANGUP notice.
	// Variable commands keep working on a dead channel, so a handler may
	// still record an outcome after seeing ErrHangup.
	ErrHangup = errors.New("agi: channel hung up")

	// ErrInvalidCommand is Asterisk's 510: it does not know the command.
	ErrInvalidCommand = errors.New("agi: invalid or unknown command")

	// ErrNotPermitted is Asterisk's 511: the command needs a live channel.
	// Errors matching it also match ErrHangup.
	ErrNotPermitted = errors.New("agi: command not permitted on a dead channel")

	// ErrUsage is Asterisk's 520: the command's arguments were wrong.
	// Reply.Text holds the usage text Asterisk sent.
	ErrUsage = errors.New("agi: invalid command syntax")

	// ErrNoSuchApp is EXEC's result=-2: the dialplan application does not exist.
	ErrNoSuchApp = errors.New("agi: no such application")

	// ErrLineTooLong means a line from the peer exceeded Server.MaxLineBytes.
	// The session cannot resynchronise after it and is closed.
	ErrLineTooLong = errors.New("agi: line too long")

	// ErrProtocol means the peer sent something that is not FastAGI.
	// The session is closed.
	ErrProtocol = errors.New("agi: protocol error")

	// ErrBadArgument means a command was refused before anything was sent,
	// typically because an argument holds CR, LF or NUL (which would let it
	// smuggle a second command to Asterisk) or the line would exceed what
	// Asterisk reads as one command.
	ErrBadArgument = errors.New("agi: bad command argument")

	// ErrServerClosed is returned by Server.Serve after Shutdown or once its
	// context is done.
	ErrServerClosed = errors.New("agi: server closed")
)

// ReplyError is a reply that the command treats as a failure: any code other
// than 200, or a 200 whose result means failure for that command.
//
// Command holds only the command's verb (for example "GET DATA"), never its
// arguments: errors end up in logs, and arguments may carry secrets.
type ReplyError struct {
	Reply   Reply
	Command string
}

func (e *ReplyError) Error() string {
	var b strings.Builder
	b.WriteString("agi: ")
	b.WriteString(e.Command)
	b.WriteString(": ")
	r := e.Reply
	switch {
	case r.Code == 200:
		// RawResult of a failed command is -1 or -2, never caller digits.
		fmt.Fprintf(&b, "200 result=%s", r.RawResult)
		switch {
		case r.Result == -1:
			b.WriteString(" (channel hung up or command failed)")
		case r.Result == -2:
			b.WriteString(" (no such application)")
		}
	case r.Code == 520:
		b.WriteString("520 invalid command syntax")
	default:
		fmt.Fprintf(&b, "%d", r.Code)
		if t := firstLine(r.Text); t != "" {
			b.WriteByte(' ')
			b.WriteString(t)
		}
	}
	return b.String()
}

// Is maps Asterisk's reply codes onto the package sentinels.
func (e *ReplyError) Is(target error) bool {
	r := e.Reply
	switch target {
	case ErrHangup:
		return r.Code == 511 || (r.Code == 200 && r.Result == -1)
	case ErrNotPermitted:
		return r.Code == 511
	case ErrInvalidCommand:
		return r.Code == 510
	case ErrUsage:
		return r.Code == 520
	case ErrNoSuchApp:
		return r.Code == 200 && r.Result == -2
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
