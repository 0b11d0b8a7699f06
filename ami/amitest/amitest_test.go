package amitest_test

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
)

// These tests speak raw AMI to the fake, independently of package ami,
// and hold its answers against the Asterisk 20 recordings in
// ../testdata.

func start(t *testing.T, opts amitest.Options) *amitest.Server {
	t.Helper()
	srv, err := amitest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// connect dials srv and checks the banner.
func connect(t *testing.T, srv *amitest.Server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	banner, err := c.br.ReadString('\n')
	if err != nil || banner != "Asterisk Call Manager/9.0.0\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	return c
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message, terminating empty line included.
func (c *rawConn) read() (string, error) {
	var b strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\r\n" || line == "\n" {
			if b.Len() == len(line) {
				b.Reset() // stray line end between messages
				continue
			}
			return b.String(), nil
		}
	}
}

func (c *rawConn) mustRead() string {
	c.t.Helper()
	m, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, m)
	}
	return m
}

// until reads messages until one contains s, and returns it.
func (c *rawConn) until(s string) string {
	c.t.Helper()
	for {
		m := c.mustRead()
		if strings.Contains(m, s) {
			return m
		}
	}
}

func (c *rawConn) login(events string) {
	c.t.Helper()
	c.send("Action: Login\r\nActionID: l\r\nUsername: harness\r\nSecret: harness-secret\r\nEvents: " + events + "\r\n\r\n")
	if m := c.mustRead(); m != "Response: Success\r\nActionID: l\r\nMessage: Authentication accepted\r\n\r\n" {
		c.t.Fatalf("login answer %q", m)
	}
}

func TestLogin(t *testing.T) {
	srv := start(t, amitest.Options{})
	c := connect(t, srv)
	c.send("Action: Ping\r\nActionID: early\r\n\r\n")
	if m := c.mustRead(); m != "Response: Error\r\nActionID: early\r\nMessage: Permission denied\r\n\r\n" {
		t.Errorf("action before login: %q", m)
	}
	c.login("on")
	if m := c.mustRead(); !strings.HasPrefix(m, "Event: FullyBooted\r\n") {
		t.Errorf("after login %q", m)
	}
	if m := c.mustRead(); !strings.HasPrefix(m, "Event: SuccessfulAuth\r\n") {
		t.Errorf("after login %q", m)
	}
	c.send("Action: Ping\r\nActionID: p\r\n\r\n")
	if m := c.mustRead(); !regexp.MustCompile(`^Response: Success\r\nActionID: p\r\nPing: Pong\r\nTimestamp: \d+\.\d{6}\r\n\r\n$`).MatchString(m) {
		t.Errorf("Ping answer %q", m)
	}
	if srv.Logins() != 1 || srv.Sessions() != 1 {
		t.Errorf("%d logins, %d sessions", srv.Logins(), srv.Sessions())
	}
}

func TestFailedLogin(t *testing.T) {
	srv := start(t, amitest.Options{FailedLoginDelay: 100 * time.Millisecond})
	listener := connect(t, srv)
	listener.login("on")

	c := connect(t, srv)
	start := time.Now()
	c.send("Action: Login\r\nActionID: bad-login-1\r\nUsername: harness\r\nSecret: wrong-secret\r\nEvents: on\r\n\r\n")
	// As recorded: the answer after the delay, then EOF.
	if m := c.mustRead(); m != "Response: Error\r\nActionID: bad-login-1\r\nMessage: Authentication failed\r\n\r\n" {
		t.Errorf("answer %q", m)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("answered after %v", d)
	}
	if m, err := c.read(); !errors.Is(err, io.EOF) || m != "" {
		t.Errorf("after the answer: %q, %v; want EOF", m, err)
	}
	if m := listener.until("Event: InvalidPassword"); !strings.Contains(m, "AccountID: harness\r\n") {
		t.Errorf("listener saw %q", m)
	}

	c2 := connect(t, srv)
	c2.send("Action: Login\r\nUsername: nosuchuser\r\nSecret: x\r\n\r\n")
	c2.mustRead()
	if m := listener.until("Event: InvalidAccountID"); !strings.Contains(m, "AccountID: nosuchuser\r\n") {
		t.Errorf("listener saw %q", m)
	}

	// Refused on purpose, right secret and all.
	srv.RefuseLogins(1)
	c3 := connect(t, srv)
	c3.send("Action: Login\r\nUsername: harness\r\nSecret: harness-secret\r\n\r\n")
	if m := c3.mustRead(); !strings.Contains(m, "Authentication failed") {
		t.Errorf("refused login answer %q", m)
	}
	connect(t, srv).login("off")
}

func TestMD5Login(t *testing.T) {
	srv := start(t, amitest.Options{})
	c := connect(t, srv)
	c.send("Action: Challenge\r\nActionID: c\r\nAuthType: MD5\r\n\r\n")
	m := c.mustRead()
	match := regexp.MustCompile(`^Response: Success\r\nActionID: c\r\nChallenge: (\d+)\r\n\r\n$`).FindStringSubmatch(m)
	if match == nil {
		t.Fatalf("challenge answer %q", m)
	}
	sum := md5.Sum([]byte(match[1] + amitest.DefaultSecret))
	c.send("Action: Login\r\nActionID: l\r\nAuthType: MD5\r\nUsername: harness\r\nKey: " + hex.EncodeToString(sum[:]) + "\r\nEvents: off\r\n\r\n")
	if m := c.mustRead(); m != "Response: Success\r\nActionID: l\r\nMessage: Authentication accepted\r\n\r\n" {
		t.Errorf("MD5 login answer %q", m)
	}

	// A key for another challenge fails.
	c2 := connect(t, srv)
	c2.send("Action: Challenge\r\nAuthType: MD5\r\n\r\n")
	c2.mustRead()
	c2.send("Action: Login\r\nAuthType: MD5\r\nUsername: harness\r\nKey: " + hex.EncodeToString(sum[:]) + "\r\n\r\n")
	if m := c2.mustRead(); !strings.Contains(m, "Authentication failed") {
		t.Errorf("stale key: %q", m)
	}
}

// recording returns the connections of a transcript: per connection, the
// chunks as (fromAsterisk, bytes).
type chunk struct {
	ast  bool
	data string
}

func recording(t *testing.T, file string) [][]chunk {
	t.Helper()
	b, err := os.ReadFile("../testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\[\+\s*[0-9.]+s\] (AST->CLI|CLI->AST) b(['"])(.*)['"]$`)
	var conns [][]chunk
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		data, err := strconv.Unquote(`"` + strings.ReplaceAll(strings.ReplaceAll(m[3], `\'`, `'`), `"`, `\"`) + `"`)
		if err != nil {
			t.Fatalf("%s: %v", m[0][:40], err)
		}
		if strings.HasPrefix(data, "Asterisk Call Manager/") {
			conns = append(conns, nil)
			continue
		}
		conns[len(conns)-1] = append(conns[len(conns)-1], chunk{ast: m[1] == "AST->CLI", data: data})
	}
	return conns
}

// answers returns the messages Asterisk sent on a connection that carry
// the ActionID, in order.
func answers(conn []chunk, id string) []string {
	var all strings.Builder
	for _, c := range conn {
		if c.ast {
			all.WriteString(c.data)
		}
	}
	var out []string
	for _, m := range strings.SplitAfter(all.String(), "\r\n\r\n") {
		if strings.Contains(m, "ActionID: "+id+"\r\n") {
			out = append(out, m)
		}
	}
	return out
}

// The fake answers the recorded actions with the recorded bytes.
func TestRecordedAnswers(t *testing.T) {
	for _, tc := range []struct {
		file  string
		conn  int
		opts  amitest.Options
		login string   // how to log in
		ids   []string // actions whose answers must match byte for byte
	}{
		{"ami-session.txt", 1, amitest.Options{NoPJSIP: true, SIPPeers: []amitest.SIPPeer{{Name: "traveler"}}},
			"on", []string{"login-ok-1", "cmd-1", "cmd-2", "cmd-3", "bad-action-1", "sippeers-1", "sipshowpeer-1", "logoff-1"}},
		{"ami-sip-registered.txt", 0, amitest.Options{NoPJSIP: true, SIPPeers: []amitest.SIPPeer{
			{Name: "traveler", Addr: netip.MustParseAddrPort("127.0.0.1:5070"), UserAgent: "sipp-harness"}}},
			"off", []string{"login-x", "x-0", "x-1"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			conn := recording(t, tc.file)[tc.conn]
			srv := start(t, tc.opts)
			c := connect(t, srv)
			for _, id := range tc.ids {
				var action string
				for _, ch := range conn {
					if !ch.ast && strings.Contains(ch.data, "ActionID: "+id+"\r\n") {
						action = ch.data
					}
				}
				if action == "" {
					t.Fatalf("no recorded action %s", id)
				}
				want := answers(conn, id)
				c.send(action)
				var got []string
				for len(got) < len(want) {
					m := c.mustRead()
					if strings.Contains(m, "ActionID: "+id+"\r\n") {
						got = append(got, m)
					}
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("%s answer %d:\n got %q\nwant %q", id, i, got[i], want[i])
					}
				}
			}
		})
	}
}

func TestLists(t *testing.T) {
	srv := start(t, amitest.Options{
		SIPPeers: []amitest.SIPPeer{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		Endpoints: []amitest.Endpoint{{Name: "alice", Contacts: []amitest.Contact{
			{URI: "sip:alice@203.0.113.7:5060", ViaAddress: "203.0.113.7:5060"},
			{URI: "sip:alice@192.0.2.1:5060", Static: true},
		}}},
	})
	c := connect(t, srv)
	c.login("off")

	c.send("Action: PJSIPShowEndpoint\r\nActionID: e\r\nEndpoint: alice\r\n\r\n")
	if m := c.mustRead(); !strings.Contains(m, "EventList: start\r\n") {
		t.Fatalf("response %q", m)
	}
	var details []string
	for {
		m := c.mustRead()
		if strings.HasPrefix(m, "Event: EndpointDetailComplete\r\nActionID: e\r\nEventList: Complete\r\n") {
			break
		}
		if strings.HasPrefix(m, "Event: ContactStatusDetail\r\n") {
			details = append(details, m)
		}
	}
	if len(details) != 2 || !strings.Contains(details[0], "ViaAddress: 203.0.113.7:5060\r\n") ||
		!strings.Contains(details[1], "RegExpire: 0\r\n") || strings.Contains(details[1], "ViaAddress") {
		t.Errorf("ContactStatusDetail events %q", details)
	}

	// res_pjsip's error: a bare LF before the CRLF.
	c.send("Action: PJSIPShowEndpoint\r\nActionID: u\r\nEndpoint: nobody\r\n\r\n")
	if m := c.mustRead(); m != "Response: Error\r\nActionID: u\r\nMessage: Unable to retrieve endpoint nobody\n\r\n" {
		t.Errorf("unknown endpoint %q", m)
	}

	c.send("Action: PJSIPShowContacts\r\nActionID: pc\r\n\r\n")
	if m := c.until("Event: ContactList\r\n"); !strings.Contains(m, "ViaAddr: 203.0.113.7\r\nViaPort: 5060\r\n") {
		t.Errorf("ContactList %q", m)
	}
	if m := c.mustRead(); !strings.HasPrefix(m, "Event: ContactListComplete\r\nActionID: pc\r\nEventList: Complete\r\nListItems: 1\r\n") {
		t.Errorf("static contact listed, or no end: %q", m)
	}

	srv.CutNextList(2)
	c.send("Action: SIPpeers\r\nActionID: s\r\n\r\n")
	n := 0
	for {
		m, err := c.read()
		if err != nil {
			break
		}
		if strings.HasPrefix(m, "Event: PeerEntry") {
			n++
		}
		if strings.Contains(m, "PeerlistComplete") {
			t.Error("cut list completed")
		}
	}
	if n != 2 {
		t.Errorf("%d items before the cut, want 2", n)
	}
}

func TestEmitAndDrop(t *testing.T) {
	srv := start(t, amitest.Options{})
	on, off := connect(t, srv), connect(t, srv)
	on.login("on")
	off.login("off")
	waitSessions(t, srv, 2)
	srv.Emit(amitest.PeerStatusEvent("traveler", "Registered", netip.MustParseAddrPort("127.0.0.1:5070")))
	if m := on.until("Event: PeerStatus"); m != "Event: PeerStatus\r\nPrivilege: system,all\r\nChannelType: SIP\r\nPeer: SIP/traveler\r\nPeerStatus: Registered\r\nAddress: 127.0.0.1:5070\r\n\r\n" {
		t.Errorf("event %q", m) // the recorded bytes
	}
	off.send("Action: Ping\r\n\r\n")
	if m := off.mustRead(); !strings.Contains(m, "Ping: Pong") {
		t.Errorf("events-off session got %q", m)
	}
	srv.DropAll()
	if _, err := on.read(); err == nil {
		t.Error("session open after DropAll")
	}
	waitSessions(t, srv, 0)
	connect(t, srv).login("off") // still accepting
}

func waitSessions(t *testing.T, srv *amitest.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, want %d", srv.Sessions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
