package ami

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads a banner and then messages until the stream ends.
func readAll(t *testing.T, r io.Reader) (version string, msgs []Message) {
	t.Helper()
	rd := newReader(r, DefaultMaxMessageBytes)
	version, err := rd.readBanner()
	if err != nil {
		t.Fatalf("banner: %v", err)
	}
	for {
		m, err := rd.readMessage()
		if errors.Is(err, io.EOF) {
			return version, msgs
		}
		if err != nil {
			t.Fatalf("message %d (after %v): %v", len(msgs)+1, msgs[len(msgs)-1:], err)
		}
		msgs = append(msgs, m)
	}
}

// Every message Asterisk sent in the recordings parses, whole, and there
// are as many as there are message ends on the wire.
func TestFixtureMessagesParse(t *testing.T) {
	for name, conns := range transcripts(t) {
		for i, conn := range conns {
			b := fromAsterisk(conn)
			// One byte at a time: no chunking the parser relies on.
			version, msgs := readAll(t, iotest.OneByteReader(bytes.NewReader(b)))
			if version != "9.0.0" {
				t.Errorf("%s #%d: version %q", name, i, version)
			}
			if want := bytes.Count(b, []byte("\r\n\r\n")); len(msgs) != want {
				t.Errorf("%s #%d: %d messages, want %d", name, i, len(msgs), want)
			}
			for j, m := range msgs {
				if !m.IsEvent() && m.Response() == "" {
					t.Errorf("%s #%d message %d is neither response nor event: %v", name, i, j, m)
				}
				// Rendering it again gives the bytes Asterisk sent.
				if !bytes.Contains(b, []byte(m.String())) {
					t.Errorf("%s #%d message %d does not render back to the recorded bytes:\n%s", name, i, j, m)
				}
			}
		}
	}
}

// What the client sends has the recorded shape byte for byte.
func TestFixtureActionsEncode(t *testing.T) {
	for _, c := range session(t, "ami-session.txt", 1) {
		if c.fromAsterisk {
			continue
		}
		want, err := newReader(bytes.NewReader(c.data), DefaultMaxMessageBytes).readMessage()
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		// Action and ActionID come first in every recorded action.
		got, err := encodeAction(want.Get("Action"), want.ActionID(), want.Headers[2:])
		if err != nil {
			t.Errorf("%v: %v", c, err)
			continue
		}
		if !bytes.Equal(got, c.data) {
			t.Errorf("encodeAction = %q, recorded %q", got, c.data)
		}
	}
}

// findResponse returns the response to the recorded ActionID.
func findResponse(t *testing.T, conn []chunk, id string) Message {
	t.Helper()
	_, msgs := readAll(t, bytes.NewReader(fromAsterisk(conn)))
	for _, m := range msgs {
		if !m.IsEvent() && m.ActionID() == id {
			return m
		}
	}
	t.Fatalf("no response with ActionID %q", id)
	return Message{}
}

func TestFixtureCommandOutput(t *testing.T) {
	conn := session(t, "ami-session.txt", 1)
	m := findResponse(t, conn, "cmd-1")
	want := []string{
		"Channel                                                          Location                         State   Application(Data)             ",
		"0 active channels",
		"0 active calls",
		"10 calls processed",
	}
	if got := m.Values("Output"); !reflect.DeepEqual(got, want) {
		t.Errorf("core show channels output = %q, want %q", got, want)
	}
	if m.Get("message") != "Command output follows" {
		t.Errorf("Message = %q", m.Get("Message"))
	}

	// The error reply came in four TCP writes.
	m = findResponse(t, conn, "cmd-3")
	if m.Response() != "Error" || len(m.Values("Output")) != 1 ||
		!strings.HasPrefix(m.Values("Output")[0], "No such command 'no such cli command'") {
		t.Errorf("unknown CLI command reply = %v", m)
	}

	// sip show peer: leading empty lines, indentation and ':' inside
	// values survive.
	m = findResponse(t, session(t, "ami-sip-registered.txt", 0), "x-2")
	out := m.Values("Output")
	if len(out) < 4 || out[0] != "" || out[1] != "" || out[2] != "  * Name       : traveler" || out[len(out)-1] != "" {
		t.Errorf("sip show peer output starts %q ... ends %q", out[:min(4, len(out))], out[len(out)-1])
	}
	if !contains(out, "  Addr->IP     : 127.0.0.1:5070") || !contains(out, "  Reg. Contact : sip:traveler@127.0.0.1:5070") {
		t.Errorf("sip show peer output lacks the address lines: %q", out)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestFixtureSIPShowPeer(t *testing.T) {
	// Before and after the peer registered.
	for _, tc := range []struct {
		file string
		conn int
		id   string
		want string
	}{
		{"ami-session.txt", 1, "sipshowpeer-1", ""},
		{"ami-sip-registered.txt", 0, "x-1", "127.0.0.1:5070"},
	} {
		m := findResponse(t, session(t, tc.file, tc.conn), tc.id)
		addr, ok, err := parsePeerAddress(m)
		if err != nil || ok != (tc.want != "") || (ok && addr.String() != tc.want) {
			t.Errorf("%s %s: address %v, %v, %v; want %q", tc.file, tc.id, addr, ok, err, tc.want)
		}
		// A value that is just a space-less "<Not set>" and one with ':'.
		if m.Get("ToneZone") != "<Not set>" || m.Get("CID-CallingPres") != "Presentation Allowed, Not Screened" {
			t.Errorf("%s: values %q %q", tc.file, m.Get("ToneZone"), m.Get("CID-CallingPres"))
		}
		// A key with a space in it.
		if _, ok := m.Lookup("Named Callgroup"); !ok {
			t.Errorf("%s: no Named Callgroup", tc.file)
		}
	}
}

func TestReadMessage(t *testing.T) {
	hs := func(kv ...string) []Header {
		var out []Header
		for i := 0; i < len(kv); i += 2 {
			out = append(out, Header{kv[i], kv[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   string
		want []Message
		err  error // after the messages in want
	}{
		{"crlf", "Response: Success\r\nActionID: 1\r\nPing: Pong\r\n\r\n",
			[]Message{{Headers: hs("Response", "Success", "ActionID", "1", "Ping", "Pong")}}, io.EOF},
		{"bare lf", "Event: A\nKey: v\n\n", []Message{{Headers: hs("Event", "A", "Key", "v")}}, io.EOF},
		{"empty value and colons", "Event: A\r\nDescription: \r\nAddress: [::1]:5060\r\nTime:12:00\r\n\r\n",
			[]Message{{Headers: hs("Event", "A", "Description", "", "Address", "[::1]:5060", "Time", "12:00")}}, io.EOF},
		{"leading spaces kept past the first", "Response: Success\r\nOutput:   indented  \r\n\r\n",
			[]Message{{Headers: hs("Response", "Success", "Output", "  indented  ")}}, io.EOF},
		{"repeated keys", "Response: Success\r\nOutput: a\r\nOutput: b\r\n\r\n",
			[]Message{{Headers: hs("Response", "Success", "Output", "a", "Output", "b")}}, io.EOF},
		{"stray blank lines between messages", "\r\n\r\nEvent: A\r\n\r\n\r\n\nEvent: B\r\n\r\n\r\n",
			[]Message{{Headers: hs("Event", "A")}, {Headers: hs("Event", "B")}}, io.EOF},
		// res_pjsip's error messages end in "\n" before the CRLF.
		{"pjsip error", "Response: Error\r\nActionID: 7\r\nMessage: Unable to retrieve endpoint bob\n\r\n\r\nEvent: A\r\n\r\n",
			[]Message{{Headers: hs("Response", "Error", "ActionID", "7", "Message", "Unable to retrieve endpoint bob")},
				{Headers: hs("Event", "A")}}, io.EOF},
		{"old command format", "Response: Follows\r\nPrivilege: Command\r\nActionID: 9\r\n\n\n  * Name : x\nlast\n--END COMMAND--\r\n\r\n",
			[]Message{{Headers: hs("Response", "Follows", "Privilege", "Command", "ActionID", "9"),
				Body: []string{"", "", "  * Name : x", "last"}}}, io.EOF},
		{"old command format, marker glued to output", "Response: Follows\r\nPrivilege: Command\r\nno newline--END COMMAND--\r\n\r\n",
			[]Message{{Headers: hs("Response", "Follows", "Privilege", "Command"), Body: []string{"no newline"}}}, io.EOF},
		{"old command format, no output", "Response: Follows\r\nPrivilege: Command\r\n--END COMMAND--\r\n\r\n",
			[]Message{{Headers: hs("Response", "Follows", "Privilege", "Command"), Body: []string{}}}, io.EOF},
		{"header after old command output", "Response: Follows\r\nPrivilege: Command\r\nout\n--END COMMAND--\r\nX: y\r\n\r\n", nil, ErrProtocol},
		{"eof inside a message", "Event: A\r\nKey: v\r\n", nil, io.ErrUnexpectedEOF},
		{"eof inside a line", "Event: A\r\nKe", nil, io.ErrUnexpectedEOF},
		{"eof inside old command output", "Response: Follows\r\nPrivilege: Command\r\nout\n", nil, io.ErrUnexpectedEOF},
		{"garbage", "Event: A\r\nthis is not a header\r\n\r\n", nil, ErrProtocol},
		{"empty key", "Event: A\r\n: v\r\n\r\n", nil, ErrProtocol},
		{"html", "<html>\r\n\r\n", nil, ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReader(strings.NewReader(tc.in), DefaultMaxMessageBytes)
			for i, want := range tc.want {
				got, err := r.readMessage()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("message %d = %#v\nwant %#v", i, got, want)
				}
			}
			if _, err := r.readMessage(); !errors.Is(err, tc.err) {
				t.Errorf("then err = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestReadMessageTooLarge(t *testing.T) {
	const max = 64
	for _, in := range []string{
		"Event: A\r\nKey: " + strings.Repeat("x", 100) + "\r\n\r\n", // one long line
		"Event: A\r\n" + strings.Repeat("K: v\r\n", 20) + "\r\n",    // many short ones
		strings.Repeat("y", 10000),                                  // no line end at all
		"Response: Follows\r\n" + strings.Repeat("output\n", 20),    // endless old output
	} {
		r := newReader(strings.NewReader(in), max)
		if _, err := r.readMessage(); !errors.Is(err, ErrMessageTooLarge) {
			t.Errorf("%.30q...: err = %v, want ErrMessageTooLarge", in, err)
		}
	}
	// Exactly at the limit is fine, and the next message gets a fresh
	// budget.
	msg := "Event: A\r\nKey: " + strings.Repeat("x", max-len("Event: A\r\nKey: \r\n\r\n")) + "\r\n\r\n"
	r := newReader(strings.NewReader(msg+msg), max)
	for i := range 2 {
		if _, err := r.readMessage(); err != nil {
			t.Fatalf("message %d of exactly %d bytes: %v", i, max, err)
		}
	}
	// A line longer than the bufio buffer but within the limit.
	long := "Event: A\r\nKey: " + strings.Repeat("z", 10000) + "\r\n\r\n"
	m, err := newReader(strings.NewReader(long), DefaultMaxMessageBytes).readMessage()
	if err != nil || len(m.Get("Key")) != 10000 {
		t.Errorf("long line: %d bytes, %v", len(m.Get("Key")), err)
	}
}

func TestReadBanner(t *testing.T) {
	for _, tc := range []struct {
		in, version string
		err         error
	}{
		{"Asterisk Call Manager/9.0.0\r\n", "9.0.0", nil},
		{"Asterisk Call Manager/2.10.6\n", "2.10.6", nil},
		{"SSH-2.0-OpenSSH_9.6\r\n", "", ErrProtocol},
		{"HTTP/1.1 400 Bad Request\r\n", "", ErrProtocol},
		{strings.Repeat("A", 1000), "", ErrProtocol},
		{"", "", io.EOF},
		{"Asterisk Call", "", io.ErrUnexpectedEOF},
	} {
		v, err := newReader(strings.NewReader(tc.in), DefaultMaxMessageBytes).readBanner()
		if v != tc.version || !errors.Is(err, tc.err) {
			t.Errorf("readBanner(%.20q) = %q, %v; want %q, %v", tc.in, v, err, tc.version, tc.err)
		}
	}
}

func TestEncodeAction(t *testing.T) {
	got, err := encodeAction("SIPshowpeer", "id-1", []Header{{"Peer", "traveler"}, {"Empty", ""}, {"With Colon", "a: b"}})
	if want := "Action: SIPshowpeer\r\nActionID: id-1\r\nPeer: traveler\r\nEmpty: \r\nWith Colon: a: b\r\n\r\n"; err != nil || string(got) != want {
		t.Errorf("encodeAction = %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct {
		name    string
		action  string
		headers []Header
	}{
		{"CRLF in value", "SIPshowpeer", []Header{{"Peer", "x\r\nAction: Originate"}}},
		{"LF in value", "SIPshowpeer", []Header{{"Peer", "x\nAction: Originate"}}},
		{"CR in value", "SIPshowpeer", []Header{{"Peer", "x\r"}}},
		{"NUL in value", "SIPshowpeer", []Header{{"Peer", "x\x00y"}}},
		{"blank line in value", "Command", []Header{{"Command", "x\r\n\r\nAction: Originate"}}},
		{"LF in key", "Ping", []Header{{"A\nB", "x"}}},
		{"colon in key", "Ping", []Header{{"A:B", "x"}}},
		{"empty key", "Ping", []Header{{"", "x"}}},
		{"spaces around key", "Ping", []Header{{" A", "x"}}},
		{"ActionID override", "Ping", []Header{{"ActionID", "mine"}}},
		{"second Action", "Ping", []Header{{"action", "Originate"}}},
		{"LF in action name", "Ping\r\nAction: Originate", nil},
		{"empty action name", "", nil},
		{"colon in action name", "A:B", nil},
	} {
		b, err := encodeAction(tc.action, "id", tc.headers)
		if !errors.Is(err, ErrInvalidHeader) || b != nil {
			t.Errorf("%s: encodeAction = %q, %v; want ErrInvalidHeader", tc.name, b, err)
		}
		if err != nil && strings.Contains(err.Error(), "Originate") && tc.action != "Ping\r\nAction: Originate" {
			t.Errorf("%s: error %q echoes the value", tc.name, err)
		}
	}
}

func TestMessageAccessors(t *testing.T) {
	m := Message{Headers: []Header{{"Event", "OriginateResponse"}, {"ActionID", "x"}, {"Response", "Success"}, {"Variable", "A=1"}, {"variable", "B=2"}}}
	if !m.IsEvent() || m.Event() != "OriginateResponse" || m.Response() != "Success" || m.ActionID() != "x" {
		t.Errorf("accessors: %v %q %q %q", m.IsEvent(), m.Event(), m.Response(), m.ActionID())
	}
	if got := m.Values("VARIABLE"); !reflect.DeepEqual(got, []string{"A=1", "B=2"}) {
		t.Errorf("Values = %q", got)
	}
	if v, ok := m.Lookup("missing"); ok || v != "" {
		t.Errorf("Lookup(missing) = %q, %v", v, ok)
	}
	if s := m.String(); s != "Event: OriginateResponse\r\nActionID: x\r\nResponse: Success\r\nVariable: A=1\r\nvariable: B=2\r\n\r\n" {
		t.Errorf("String = %q", s)
	}
	old := Message{Headers: []Header{{"Response", "Follows"}}, Body: []string{"a", ""}}
	if s := old.String(); s != "Response: Follows\r\na\n\n--END COMMAND--\r\n\r\n" {
		t.Errorf("String = %q", s)
	}
}
