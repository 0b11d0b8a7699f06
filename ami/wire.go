package ami

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// bannerPrefix starts the line Asterisk sends when a client connects,
// "Asterisk Call Manager/9.0.0" in Asterisk 20. It is not followed by a
// blank line, unlike every message after it.
const bannerPrefix = "Asterisk Call Manager"

// maxBannerBytes bounds the banner line; Asterisk's is under 40 bytes.
const maxBannerBytes = 256

// endCommand closes the body of a "Response: Follows" reply.
const endCommand = "--END COMMAND--"

// reader reads AMI messages: header lines up to an empty line. Lines end
// in CRLF; a bare LF is accepted too, since some Asterisk messages embed
// one (an error Message built from a format ending in "\n").
type reader struct {
	br  *bufio.Reader
	max int    // most bytes in one message, terminators included
	buf []byte // accumulates a line longer than br's buffer
}

func newReader(r io.Reader, maxMessage int) *reader {
	return &reader{br: bufio.NewReaderSize(r, 4096), max: maxMessage}
}

// readLine returns the next line without its LF or CRLF, and the bytes it
// took on the wire. A line that would take more than limit bytes fails
// with ErrMessageTooLarge. The returned slice is valid until the next
// call.
func (r *reader) readLine(limit int) (line []byte, n int, err error) {
	r.buf = r.buf[:0]
	for {
		b, err := r.br.ReadSlice('\n')
		n += len(b)
		if n > limit {
			return nil, n, fmt.Errorf("%w: more than %d bytes", ErrMessageTooLarge, r.max)
		}
		switch {
		case err == nil:
			if len(r.buf) > 0 {
				r.buf = append(r.buf, b...)
				b = r.buf
			}
			b = b[:len(b)-1]
			if k := len(b); k > 0 && b[k-1] == '\r' {
				b = b[:k-1]
			}
			return b, n, nil
		case errors.Is(err, bufio.ErrBufferFull):
			r.buf = append(r.buf, b...)
		case errors.Is(err, io.EOF):
			if n > 0 {
				return nil, n, io.ErrUnexpectedEOF
			}
			return nil, 0, io.EOF
		default:
			return nil, n, err
		}
	}
}

// readBanner reads the greeting line and returns the protocol version
// after the slash ("9.0.0").
func (r *reader) readBanner() (string, error) {
	line, _, err := r.readLine(maxBannerBytes)
	if errors.Is(err, ErrMessageTooLarge) {
		return "", fmt.Errorf("%w: banner longer than %d bytes; not an AMI server?", ErrProtocol, maxBannerBytes)
	}
	if err != nil {
		return "", err
	}
	s := string(line)
	if !strings.HasPrefix(s, bannerPrefix) {
		return "", fmt.Errorf("%w: banner %s is not %q; not an AMI server?", ErrProtocol, quoteTrunc(line), bannerPrefix+"/<version>")
	}
	_, version, _ := strings.Cut(s, "/")
	return version, nil
}

// readMessage reads one message. Empty lines before it are skipped:
// Asterisk sometimes ends a message with an extra CRLF, and an error
// Message ending in LF makes what follows it look like one. io.EOF means
// the stream ended cleanly between messages; io.ErrUnexpectedEOF, inside
// one.
func (r *reader) readMessage() (Message, error) {
	var (
		m       Message
		budget  = r.max
		started bool
		follows bool // "Response: Follows": raw output follows the headers
		inBody  bool
		ended   bool // the output's end marker has been read
	)
	for {
		line, n, err := r.readLine(budget)
		if err != nil {
			if started && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Message{}, err
		}
		if !started && len(line) == 0 {
			continue // stray line end between messages; costs no memory
		}
		budget -= n

		if follows && m.Body == nil && !isFollowsHeader(line) {
			// The first line that is not one of the few headers Asterisk
			// puts before the output starts the output, even an empty
			// one: CLI output may begin with blank lines, and may well
			// contain ": ", so neither proves anything.
			m.Body = []string{}
			inBody = true
		}
		if inBody {
			// The old Command format: CLI output verbatim, LF-terminated,
			// empty lines included, up to the marker. Output that does
			// not end in a newline gets the marker glued to its last line.
			before, end := bytes.CutSuffix(line, []byte(endCommand))
			if !end || len(before) > 0 {
				m.Body = append(m.Body, string(before))
			}
			inBody, ended = !end, end
			continue
		}
		if len(line) == 0 {
			return m, nil
		}
		if ended {
			return Message{}, fmt.Errorf("%w: %s after %q", ErrProtocol, quoteTrunc(line), endCommand)
		}
		h, err := parseHeader(line)
		if err != nil {
			return Message{}, err
		}
		if !started && strings.EqualFold(h.Key, "Response") && strings.EqualFold(h.Value, "Follows") {
			follows = true
		}
		started = true
		m.Headers = append(m.Headers, h)
	}
}

// isFollowsHeader reports whether line is one of the headers Asterisk
// writes between "Response: Follows" and the command output.
func isFollowsHeader(line []byte) bool {
	k, _, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return false
	}
	key := string(k)
	return strings.EqualFold(key, "Privilege") || strings.EqualFold(key, "ActionID")
}

// parseHeader splits "Key: Value". Exactly one space after the colon is
// separator; further spaces belong to the value, because CLI output lines
// in "Output:" headers keep their indentation.
func parseHeader(line []byte) (Header, error) {
	k, v, ok := bytes.Cut(line, []byte(":"))
	key := strings.TrimSpace(string(k))
	if !ok || key == "" {
		return Header{}, fmt.Errorf("%w: line %s is not \"Key: Value\"", ErrProtocol, quoteTrunc(line))
	}
	v = bytes.TrimPrefix(v, []byte(" "))
	return Header{Key: key, Value: string(v)}, nil
}

// quoteTrunc quotes the start of b for an error message.
func quoteTrunc(b []byte) string {
	const max = 48
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

// encodeAction renders an action for the wire, refusing anything that
// could break out of its header line.
func encodeAction(name, id string, headers []Header) ([]byte, error) {
	if err := checkField("action name", name); err != nil {
		return nil, err
	}
	if name == "" || strings.ContainsAny(name, ": \t") {
		return nil, fmt.Errorf("%w: bad action name %q", ErrInvalidHeader, name)
	}
	size := len("Action: \r\nActionID: \r\n\r\n") + len(name) + len(id)
	for _, h := range headers {
		if err := checkHeader(h); err != nil {
			return nil, err
		}
		size += len(h.Key) + len(h.Value) + 4
	}
	b := make([]byte, 0, size)
	b = append(b, "Action: "...)
	b = append(b, name...)
	b = append(b, "\r\nActionID: "...)
	b = append(b, id...)
	b = append(b, "\r\n"...)
	for _, h := range headers {
		b = append(b, h.Key...)
		b = append(b, ": "...)
		b = append(b, h.Value...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

func checkHeader(h Header) error {
	switch {
	case h.Key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidHeader)
	case strings.ContainsRune(h.Key, ':') || strings.TrimSpace(h.Key) != h.Key:
		return fmt.Errorf("%w: bad key %q", ErrInvalidHeader, h.Key)
	case strings.EqualFold(h.Key, "Action") || strings.EqualFold(h.Key, "ActionID"):
		return fmt.Errorf("%w: %s is set by the client", ErrInvalidHeader, h.Key)
	}
	if err := checkField("key", h.Key); err != nil {
		return err
	}
	// The value itself stays out of the error: it may be a secret.
	return checkField("value of "+h.Key, h.Value)
}

// checkField refuses line breaks and NUL, which would end the header (or
// the whole action) early and let the rest pass for a header or action of
// its own.
func checkField(what, s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return fmt.Errorf("%w: %s contains CR, LF or NUL", ErrInvalidHeader, what)
	}
	return nil
}
