package agi

import (
	"fmt"
	"strings"
)

// maxCommandBytes is the longest command line, without its LF, that
// Asterisk reads as one command. res_agi reads commands into a 2048-byte
// buffer and treats whatever does not fit as the start of the NEXT
// command, so a longer line would let an argument smuggle in a command of
// its own. The LF and the C string's NUL take the last two bytes.
const maxCommandBytes = 2048 - 2

// quoteArg renders one argument the way res_agi's parser splits them:
// words are separated by spaces or tabs, double quotes group, and a
// backslash makes the next character literal. An argument is quoted when
// it is empty (or the parser would drop it), holds a separator, a quote or
// a backslash, or when always is set (VERBOSE's message, to match what the
// recorded Asterisk sessions show).
//
// CR, LF and NUL are refused rather than escaped: LF ends the command,
// NUL ends Asterisk's C string, and CR is kept by Asterisk as part of the
// argument, which is never what the caller meant.
func quoteArg(s string, always bool) (string, error) {
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		return "", fmt.Errorf("%w: argument contains %q at offset %d", ErrBadArgument, s[i], i)
	}
	if !always && s != "" && !strings.ContainsAny(s, " \t\"\\") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String(), nil
}

// arg is one command argument and whether it must always be quoted.
type arg struct {
	s      string
	always bool
}

func plain(s string) arg  { return arg{s: s} }
func quoted(s string) arg { return arg{s: s, always: true} }

// buildCommand joins a verb and its arguments into one command line
// without the LF.
func buildCommand(verb string, args ...arg) (string, error) {
	var b strings.Builder
	b.WriteString(verb)
	for _, a := range args {
		q, err := quoteArg(a.s, a.always)
		if err != nil {
			return "", err
		}
		b.WriteByte(' ')
		b.WriteString(q)
	}
	if err := checkLine(b.String()); err != nil {
		return "", err
	}
	return b.String(), nil
}

// checkLine vets a complete command line before it is sent.
func checkLine(line string) error {
	if i := strings.IndexAny(line, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("%w: command contains %q at offset %d", ErrBadArgument, line[i], i)
	}
	if len(line) > maxCommandBytes {
		return fmt.Errorf("%w: command is %d bytes, Asterisk reads at most %d as one command", ErrBadArgument, len(line), maxCommandBytes)
	}
	if strings.TrimSpace(line) == "" {
		return fmt.Errorf("%w: empty command", ErrBadArgument)
	}
	return nil
}
