package agi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Reply is one answer from Asterisk to a command, for example
//
//	200 result=1 (SIP/traveler-00000001)
//	200 result=0 endpos=8000
//	510 Invalid or unknown command
type Reply struct {
	// Code is the three-digit status: 200 success, 510 unknown command,
	// 511 dead channel, 520 usage.
	Code int
	// Result is the result= value as an integer, 0 if it is not one.
	Result int
	// RawResult is the result= value verbatim. GET DATA puts the digits
	// the caller typed here, where leading zeros and '*' survive.
	RawResult string
	// Data is the parenthesised part after the result, without the
	// parentheses: a variable's value, or a note such as "timeout".
	Data string
	// Extra holds the key=value pairs after the data, such as endpos.
	Extra map[string]string
	// Text is the human-readable rest of the reply: the usage text of a
	// 520, the message of a 510/511, or trailing words of a 200
	// ("Gosub complete").
	Text string
}

// Limits that keep a hostile or broken peer from growing a reply without
// bound; the read deadline bounds the time, these bound the memory.
const (
	maxSkippedLines = 16   // HANGUP notices and 100 Trying lines before a reply
	maxUsageLines   = 1024 // lines of a 520 usage text
)

// lineReader reads LF-terminated lines no longer than max bytes.
type lineReader struct {
	br  *bufio.Reader
	max int
}

func newLineReader(r io.Reader, maxLine int) *lineReader {
	// One byte more than maxLine for the LF, so a line of exactly maxLine
	// bytes fits; bufio enforces its own minimum of 16.
	return &lineReader{br: bufio.NewReaderSize(r, maxLine+1), max: maxLine}
}

// readLine returns the next line without its LF. A trailing CR is dropped:
// Asterisk never sends one, but a hand-written peer might, and no value we
// read can meaningfully end in CR.
func (r *lineReader) readLine() (string, error) {
	b, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("%w: more than %d bytes without a newline", ErrLineTooLong, r.max)
	case errors.Is(err, io.EOF):
		if len(b) > 0 {
			return "", io.ErrUnexpectedEOF
		}
		return "", io.EOF
	case err != nil:
		return "", err
	}
	b = b[:len(b)-1]
	if len(b) > r.max {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrLineTooLong, len(b), r.max)
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b), nil
}

// checkIdle verifies that nothing but (part of) the HANGUP notice follows
// a reply. Asterisk sends nothing else unprompted, so more data means a
// reply carried a line break, say a variable value with a newline in it,
// and its tail would pass for the answer to the next command.
func (r *lineReader) checkIdle() error {
	const notice = "HANGUP\n"
	n := min(r.br.Buffered(), len(notice)+1)
	if n == 0 {
		return nil
	}
	b, _ := r.br.Peek(n)
	if len(b) > len(notice) || !strings.HasPrefix(notice, string(b)) {
		return fmt.Errorf("%w: unexpected data after a reply", ErrProtocol)
	}
	return nil
}

// readReply reads one reply. It skips the unsolicited "HANGUP" notice
// (reporting that it saw one) and provisional "100" lines, and collects
// the continuation lines of a multi-line 520.
func readReply(r *lineReader) (rep Reply, hangup bool, err error) {
	for skipped := 0; ; skipped++ {
		if skipped > maxSkippedLines {
			return Reply{}, hangup, fmt.Errorf("%w: more than %d lines before a reply", ErrProtocol, maxSkippedLines)
		}
		line, err := r.readLine()
		if err != nil {
			return Reply{}, hangup, err
		}
		if line == "HANGUP" {
			hangup = true
			continue
		}
		code, multi, rest, err := splitStatus(line)
		if err != nil {
			return Reply{}, hangup, err
		}
		if code == 100 {
			// GOSUB says "100 result=0 Trying..." before running the
			// subroutine; the real reply follows.
			continue
		}
		if multi {
			rep, err = readMultiline(r, code)
			return rep, hangup, err
		}
		rep, err = parseReply(code, rest)
		return rep, hangup, err
	}
}

// splitStatus splits "200 result=0" into 200 and "result=0", and reports
// whether the line opens a multi-line reply ("520-...").
func splitStatus(line string) (code int, multi bool, rest string, err error) {
	if len(line) < 3 || !isDigits(line[:3]) {
		return 0, false, "", fmt.Errorf("%w: reply does not start with a status code (%d bytes)", ErrProtocol, len(line))
	}
	code, _ = strconv.Atoi(line[:3])
	switch {
	case len(line) == 3:
		return code, false, "", nil
	case line[3] == ' ':
		return code, false, line[4:], nil
	case line[3] == '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", fmt.Errorf("%w: malformed status code (%d bytes)", ErrProtocol, len(line))
}

// readMultiline collects the body of a "NNN-" reply up to the "NNN " line
// that ends it. Asterisk only does this for 520 usage text.
func readMultiline(r *lineReader, code int) (Reply, error) {
	end := strconv.Itoa(code)
	var body []string
	size := 0
	for range maxUsageLines {
		line, err := r.readLine()
		if err != nil {
			return Reply{}, err
		}
		if line == end || strings.HasPrefix(line, end+" ") {
			return Reply{Code: code, Text: strings.Join(body, "\n")}, nil
		}
		size += len(line) + 1
		if size > r.max*4 {
			return Reply{}, fmt.Errorf("%w: %d reply exceeds %d bytes", ErrLineTooLong, code, r.max*4)
		}
		body = append(body, line)
	}
	return Reply{}, fmt.Errorf("%w: %d reply longer than %d lines", ErrProtocol, code, maxUsageLines)
}

// parseReply parses what follows the status code of a single-line reply.
func parseReply(code int, rest string) (Reply, error) {
	rep := Reply{Code: code}
	if code != 200 {
		rep.Text = rest
		return rep, nil
	}
	v, ok := strings.CutPrefix(rest, "result=")
	if !ok {
		return Reply{}, fmt.Errorf("%w: 200 reply without result=", ErrProtocol)
	}
	// The value may be empty: GET DATA answers "200 result= (timeout)"
	// when nobody typed anything.
	rep.RawResult, rest, _ = strings.Cut(v, " ")
	if n, err := strconv.Atoi(rep.RawResult); err == nil {
		rep.Result = n
	}
	if strings.HasPrefix(rest, "(") {
		// Data may itself hold parentheses ("a b (c) d"), and key=value
		// pairs never do, so the data ends at the last ')'.
		end := strings.LastIndexByte(rest, ')')
		if end < 0 {
			return Reply{}, fmt.Errorf("%w: unterminated data in 200 reply", ErrProtocol)
		}
		rep.Data = rest[1:end]
		rest = strings.TrimPrefix(rest[end+1:], " ")
	}
	for rest != "" {
		tok, more, _ := strings.Cut(rest, " ")
		k, val, ok := strings.Cut(tok, "=")
		if !ok || k == "" {
			rep.Text = rest
			break
		}
		if rep.Extra == nil {
			rep.Extra = make(map[string]string)
		}
		rep.Extra[k] = val
		rest = more
	}
	return rep, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
