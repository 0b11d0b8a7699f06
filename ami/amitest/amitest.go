// Package amitest plays Asterisk's side of the Asterisk Manager
// Interface, for tests: a Server on a loopback port that greets, logs in
// (plain and MD5 challenge), and answers the actions a client of
// dialgate's needs the way Asterisk 20 does in the recordings under
// ami/testdata: Ping, Command, Logoff, SIPpeers and SIPshowpeer
// (chan_sip), PJSIPShowEndpoint and PJSIPShowContacts (res_pjsip, shaped
// after Asterisk's documentation and source, as the recordings come from
// a chan_sip-only build). Events are pushed on demand.
//
// Hooks make it misbehave on purpose: refuse logins, delay answers (which
// then come out of order), cut an event list in the middle, drop every
// connection, or send raw bytes.
//
// It is deliberately independent of package ami, so that each checks the
// other.
//
//	srv, err := amitest.Start(amitest.Options{
//		SIPPeers: []amitest.SIPPeer{{Name: "traveler", Addr: netip.MustParseAddrPort("203.0.113.7:5060")}},
//	})
//	...
//	defer srv.Close()
//	// dial srv.Addr() as user "harness", secret "harness-secret"
package amitest

import (
	"bufio"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of the zero Options fields: the manager.conf user of the
// recordings.
const (
	DefaultUsername = "harness"
	DefaultSecret   = "harness-secret"
	DefaultVersion  = "9.0.0"
)

// Header is one "Key: Value" line.
type Header struct{ Key, Value string }

// Message is an action received or an event to send, in wire order.
type Message []Header

// Get returns the first value for key, ignoring case, as Asterisk does.
func (m Message) Get(key string) string {
	for _, h := range m {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

// NewEvent builds an event from its name and key, value pairs.
func NewEvent(name string, kv ...string) Message {
	if len(kv)%2 != 0 {
		panic("amitest: NewEvent needs key, value pairs")
	}
	m := Message{{"Event", name}}
	for i := 0; i < len(kv); i += 2 {
		m = append(m, Header{kv[i], kv[i+1]})
	}
	return m
}

// PeerStatusEvent is chan_sip's event for a registration change, as
// recorded: status "Registered" with the address, or "Unregistered".
func PeerStatusEvent(peer, status string, addr netip.AddrPort) Message {
	ev := NewEvent("PeerStatus", "Privilege", "system,all", "ChannelType", "SIP",
		"Peer", "SIP/"+peer, "PeerStatus", status)
	if addr.IsValid() {
		ev = append(ev, Header{"Address", addr.String()})
	}
	return ev
}

// ContactStatusEvent is res_pjsip's event for a contact change; status is
// one of Created, Removed, Reachable, Unreachable, Updated, Unknown.
func ContactStatusEvent(endpoint, uri, status string) Message {
	return NewEvent("ContactStatus", "Privilege", "system,all", "URI", uri,
		"ContactStatus", status, "AOR", endpoint, "EndpointName", endpoint, "RoundtripUsec", "0")
}

// SecurityEvent is a security event as Asterisk 20 writes it (recorded
// in ami/testdata/security/): kind SuccessfulAuth, InvalidPassword,
// ChallengeResponseFailed, InvalidAccountID, FailedACL...; service "SIP"
// (chan_sip), "PJSIP" or "AMI"; transport "UDP", "TCP" or "TLS"; local
// is the server's address the request reached.
func SecurityEvent(kind, service, account, transport string, remote, local netip.AddrPort) Message {
	fam := func(ap netip.AddrPort) string {
		if ap.Addr().Is4() {
			return "IPV4"
		}
		return "IPV6"
	}
	addr := func(ap netip.AddrPort) string {
		return fmt.Sprintf("%s/%s/%s/%d", fam(ap), transport, ap.Addr(), ap.Port())
	}
	severity := "Error"
	if kind == "SuccessfulAuth" || kind == "ChallengeSent" {
		severity = "Informational"
	}
	ev := NewEvent(kind, "Privilege", "security,all", "EventTV", "2026-12-01T14:24:07.734+0000",
		"Severity", severity, "Service", service, "EventVersion", "1", "AccountID", account,
		"SessionID", "0x7f038c007a50", "LocalAddress", addr(local), "RemoteAddress", addr(remote))
	if kind == "SuccessfulAuth" {
		ev = append(ev, Header{"UsingPassword", "1"})
	}
	return ev
}

// SIPPeer is a chan_sip peer.
type SIPPeer struct {
	Name string
	// Addr is where the peer is registered from; the zero value means
	// not registered ("Address-IP: (null)").
	Addr      netip.AddrPort
	UserAgent string
}

// Endpoint is a PJSIP endpoint with one AOR of the same name.
type Endpoint struct {
	Name     string
	Contacts []Contact
}

// Contact is a PJSIP contact.
type Contact struct {
	// URI as Asterisk stores it: "sip:alice@203.0.113.7:5060;ob".
	URI string
	// ViaAddress is written verbatim; "" leaves the header out, as
	// Asterisk does when the REGISTER had no Via host.
	ViaAddress string
	// Status defaults to "Reachable".
	Status    string
	UserAgent string
	// Static marks a contact configured on the AOR (contact=) rather
	// than registered: RegExpire 0, no Via, no Call-ID.
	Static bool
}

// Options configure a Server. The zero value serves user "harness" with
// secret "harness-secret", both channel drivers, and no peers.
type Options struct {
	Username, Secret string
	// Version is the AMI version of the banner. Default "9.0.0".
	Version string
	// FailedLoginDelay is how long a refused login waits before its
	// answer. Default 1s, as Asterisk; negative means none.
	FailedLoginDelay time.Duration
	// NoChanSIP and NoPJSIP make the driver's actions unknown, as when
	// its module is not loaded (the recordings come from a build without
	// chan_pjsip).
	NoChanSIP, NoPJSIP bool
	// Commands answer Action: Command by CLI command line, adding to or
	// replacing "core show version" and "core show channels".
	Commands map[string][]string
	// OldCommandFormat answers Command as Asterisk 13 and older:
	// "Response: Follows", raw lines, "--END COMMAND--".
	OldCommandFormat bool
	SIPPeers         []SIPPeer
	Endpoints        []Endpoint
	// TLS, if set, serves AMI over TLS, as manager.conf's tlsenable does.
	TLS *tls.Config
}

// Server is a fake Asterisk manager interface.
type Server struct {
	opts Options
	l    net.Listener
	wg   sync.WaitGroup

	mu        sync.Mutex
	peers     map[string]SIPPeer
	endpoints map[string]Endpoint
	sessions  map[*session]struct{}
	received  []Message
	logins    int
	refuse    int
	cutList   int // items before the next list is cut; -1: none
	delay     func(action string) time.Duration
	closed    bool
}

// Start listens on a loopback port and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.Secret == "" {
		opts.Secret = DefaultSecret
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.FailedLoginDelay == 0 {
		opts.FailedLoginDelay = time.Second
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("amitest: %w", err)
	}
	if opts.TLS != nil {
		l = tls.NewListener(l, opts.TLS)
	}
	s := &Server{
		opts:      opts,
		l:         l,
		peers:     make(map[string]SIPPeer),
		endpoints: make(map[string]Endpoint),
		sessions:  make(map[*session]struct{}),
		cutList:   -1,
	}
	for _, p := range opts.SIPPeers {
		s.peers[p.Name] = p
	}
	for _, e := range opts.Endpoints {
		s.endpoints[e.Name] = e
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the host:port to dial.
func (s *Server) Addr() string { return s.l.Addr().String() }

// Close stops listening, drops every session and waits for them to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.l.Close()
	s.DropAll()
	s.wg.Wait()
	return err
}

// SetSIPPeer adds or replaces a chan_sip peer.
func (s *Server) SetSIPPeer(p SIPPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers[p.Name] = p
}

// SetEndpoint adds or replaces a PJSIP endpoint.
func (s *Server) SetEndpoint(e Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints[e.Name] = e
}

// Emit sends an event to every session logged in with events on.
func (s *Server) Emit(ev Message) {
	wire := encode(ev)
	for _, ss := range s.snapshot() {
		if ss.wantsEvents() {
			ss.write(wire)
		}
	}
}

// WriteRaw sends bytes as they are to every session, logged in or not.
func (s *Server) WriteRaw(b string) {
	for _, ss := range s.snapshot() {
		ss.write(b)
	}
}

// DropAll closes every session, as a restarting Asterisk would; the
// server goes on accepting.
func (s *Server) DropAll() {
	for _, ss := range s.snapshot() {
		ss.close()
	}
}

// RefuseLogins makes the next n logins fail even with the right secret.
func (s *Server) RefuseLogins(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = n
}

// CutNextList makes the next list action send its response and after
// items, then close the connection without the closing event.
func (s *Server) CutNextList(after int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutList = after
}

// SetDelay makes the server wait f(action) before answering each action
// (nil: no delay). Delayed actions are answered concurrently, so answers
// come back in the order their delays run out, not the order the actions
// came in. A delay longer than the client waits simulates a lost answer.
func (s *Server) SetDelay(f func(action string) time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = f
}

// Received returns every action received so far, secrets included.
func (s *Server) Received() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Logins returns how many logins succeeded.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Sessions returns how many connections are open.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) snapshot() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.l.Accept()
		if err != nil {
			return
		}
		ss := &session{srv: s, nc: nc, done: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.sessions[ss] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go ss.serve()
	}
}

// session is one client connection.
type session struct {
	srv *Server
	nc  net.Conn

	wmu  sync.Mutex // one message (or list) at a time
	done chan struct{}
	once sync.Once

	mu        sync.Mutex
	authed    bool
	events    bool
	challenge string
	wg        sync.WaitGroup // delayed answers
}

func (ss *session) close() {
	ss.once.Do(func() {
		close(ss.done)
		ss.nc.Close()
	})
}

func (ss *session) write(b string) {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	ss.nc.Write([]byte(b))
}

func (ss *session) wantsEvents() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.authed && ss.events
}

func (ss *session) serve() {
	s := ss.srv
	defer s.wg.Done()
	defer func() {
		ss.close()
		ss.wg.Wait()
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
	ss.write("Asterisk Call Manager/" + s.opts.Version + "\r\n")
	br := bufio.NewReader(ss.nc)
	for {
		a, err := readAction(br)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.received = append(s.received, a)
		delay := s.delay
		s.mu.Unlock()
		if delay != nil {
			if d := delay(a.Get("Action")); d > 0 {
				ss.wg.Add(1)
				go func() {
					defer ss.wg.Done()
					t := time.NewTimer(d)
					defer t.Stop()
					select {
					case <-t.C:
						if !ss.handle(a) {
							ss.close()
						}
					case <-ss.done:
					}
				}()
				continue
			}
		}
		if !ss.handle(a) {
			return
		}
	}
}

// readAction reads one action: lines up to an empty one, CRLF or LF.
// Empty lines before it are skipped, as Asterisk does.
func readAction(br *bufio.Reader) (Message, error) {
	var m Message
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (len(m) > 0 || line != "") {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if len(m) == 0 {
				continue
			}
			return m, nil
		}
		k, v, _ := strings.Cut(line, ":")
		m = append(m, Header{strings.TrimSpace(k), strings.TrimPrefix(v, " ")})
	}
}

func encode(m Message) string {
	var b strings.Builder
	for _, h := range m {
		b.WriteString(h.Key + ": " + h.Value + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// reply starts a response: "Response: <status>" and the ActionID if the
// action had one, as astman_send_response does.
func reply(a Message, status string) string {
	s := "Response: " + status + "\r\n"
	if id := a.Get("ActionID"); id != "" {
		s += "ActionID: " + id + "\r\n"
	}
	return s
}

func errorReply(a Message, msg string) string {
	return reply(a, "Error") + "Message: " + msg + "\r\n\r\n"
}

// idLine is the ActionID line of a list event, if the action had one.
func idLine(a Message) string {
	if id := a.Get("ActionID"); id != "" {
		return "ActionID: " + id + "\r\n"
	}
	return ""
}

// handle answers one action and reports whether the session goes on.
func (ss *session) handle(a Message) bool {
	name := strings.ToLower(a.Get("Action"))
	ss.mu.Lock()
	authed := ss.authed
	ss.mu.Unlock()
	switch {
	case name == "login":
		return ss.login(a)
	case name == "challenge":
		return ss.challengeAction(a)
	case name == "logoff":
		ss.write(reply(a, "Goodbye") + "Message: Thanks for all the fish.\r\n\r\n")
		return false
	case !authed:
		ss.write(errorReply(a, "Permission denied"))
		return true
	}
	sip, pjsip := !ss.srv.opts.NoChanSIP, !ss.srv.opts.NoPJSIP
	switch {
	case name == "ping":
		now := time.Now()
		ss.write(reply(a, "Success") + fmt.Sprintf("Ping: Pong\r\nTimestamp: %d.%06d\r\n\r\n", now.Unix(), now.Nanosecond()/1000))
	case name == "command":
		ss.command(a)
	case name == "reload":
		// manager.c: a module that exists reloads; the answer does not
		// wait for the reload itself.
		switch a.Get("Module") {
		case "", "pbx_config", "chan_sip", "res_pjsip", "manager":
			ss.write(reply(a, "Success") + "Message: Module Reloaded.\r\n\r\n")
		default:
			ss.write(errorReply(a, "No such module."))
		}
	case name == "sippeers" && sip:
		return ss.sipPeers(a)
	case name == "sipshowpeer" && sip:
		ss.sipShowPeer(a)
	case name == "pjsipshowendpoint" && pjsip:
		return ss.pjsipShowEndpoint(a)
	case name == "pjsipshowcontacts" && pjsip:
		return ss.pjsipShowContacts(a)
	default:
		ss.write(errorReply(a, "Invalid/unknown command: "+a.Get("Action")+". Use Action: ListCommands to show available commands."))
		if ss.wantsEvents() {
			ss.write(encode(NewEvent("RequestBadFormat", "Privilege", "security,all",
				"Severity", "Error", "Service", "AMI", "EventVersion", "1",
				"RequestType", "Action: "+a.Get("Action"), "AccountID", ss.srv.opts.Username)))
		}
	}
	return true
}

func (ss *session) challengeAction(a Message) bool {
	if !strings.EqualFold(a.Get("AuthType"), "MD5") {
		ss.write(errorReply(a, "Must specify AuthType"))
		return true
	}
	ss.mu.Lock()
	if ss.challenge == "" {
		ss.challenge = strconv.Itoa(rand.IntN(1_000_000_000))
	}
	ch := ss.challenge
	ss.mu.Unlock()
	ss.write(reply(a, "Success") + "Challenge: " + ch + "\r\n\r\n")
	return true
}

func (ss *session) login(a Message) bool {
	s := ss.srv
	user := a.Get("Username")
	ok := user == s.opts.Username
	if ok {
		if strings.EqualFold(a.Get("AuthType"), "MD5") {
			ss.mu.Lock()
			ch := ss.challenge
			ss.mu.Unlock()
			sum := md5.Sum([]byte(ch + s.opts.Secret))
			ok = ch != "" && a.Get("Key") == hex.EncodeToString(sum[:])
		} else {
			ok = a.Get("Secret") == s.opts.Secret
		}
	}
	s.mu.Lock()
	if ok && s.refuse > 0 {
		s.refuse--
		ok = false
	}
	if ok {
		s.logins++
	}
	s.mu.Unlock()

	if !ok {
		if d := s.opts.FailedLoginDelay; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ss.done:
				t.Stop()
				return false
			}
		}
		ss.write(errorReply(a, "Authentication failed"))
		ev := "InvalidPassword"
		if user != s.opts.Username {
			ev = "InvalidAccountID"
		}
		for _, other := range s.snapshot() {
			if other != ss && other.wantsEvents() {
				other.write(encode(NewEvent(ev, "Privilege", "security,all", "Severity", "Error",
					"Service", "AMI", "EventVersion", "1", "AccountID", user)))
			}
		}
		return false // Asterisk closes the connection
	}
	events := !strings.EqualFold(a.Get("Events"), "off")
	ss.mu.Lock()
	ss.authed, ss.events = true, events
	ss.mu.Unlock()
	resp := reply(a, "Success") + "Message: Authentication accepted\r\n\r\n"
	if !events {
		ss.write(resp)
		return true
	}
	// As recorded: FullyBooted in the same write, SuccessfulAuth after.
	ss.write(resp + encode(NewEvent("FullyBooted", "Privilege", "system,all", "Uptime", "89",
		"LastReload", "89", "Status", "Fully Booted")))
	ss.write(encode(NewEvent("SuccessfulAuth", "Privilege", "security,all", "Severity", "Informational",
		"Service", "AMI", "EventVersion", "1", "AccountID", user, "UsingPassword", "0")))
	return true
}

// defaultCommands are the CLI answers recorded from Asterisk 20.
var defaultCommands = map[string][]string{
	"core show version": {"Asterisk 20.20.1 built by root @ vm on a x86_64 running Linux on 2026-11-29 14:44:39 UTC"},
	"core show channels": {
		"Channel                                                          Location                         State   Application(Data)             ",
		"0 active channels",
		"0 active calls",
		"10 calls processed",
	},
}

func (ss *session) command(a Message) {
	cmd := a.Get("Command")
	out, ok := ss.srv.opts.Commands[cmd]
	if !ok {
		out, ok = defaultCommands[cmd]
	}
	status := "Success"
	if !ok {
		words := strings.Fields(cmd)
		hint := strings.Join(words[:min(2, len(words))], " ")
		out = []string{fmt.Sprintf("No such command '%s' (type 'core show help %s' for other possible commands)", cmd, hint)}
		status = "Error"
	}
	if ss.srv.opts.OldCommandFormat {
		// Asterisk 13 and older; an error still says Follows.
		var b strings.Builder
		b.WriteString("Response: Follows\r\nPrivilege: Command\r\n")
		b.WriteString(idLine(a))
		for _, l := range out {
			b.WriteString(l + "\n")
		}
		b.WriteString("--END COMMAND--\r\n\r\n")
		ss.write(b.String())
		return
	}
	var b strings.Builder
	b.WriteString(reply(a, status))
	b.WriteString("Message: Command output follows\r\n")
	for _, l := range out {
		b.WriteString("Output: " + l + "\r\n")
	}
	b.WriteString("\r\n")
	ss.write(b.String())
}

// list writes a list answer: response, items, closing event; or, when
// CutNextList is armed, the response and the first items, then closes
// the connection. It reports whether the session goes on.
func (ss *session) list(a Message, message string, items []string, complete string) bool {
	s := ss.srv
	s.mu.Lock()
	cut := s.cutList
	s.cutList = -1
	s.mu.Unlock()

	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	w := func(b string) {
		ss.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		ss.nc.Write([]byte(b))
	}
	w(reply(a, "Success") + "EventList: start\r\nMessage: " + message + "\r\n\r\n")
	for i, it := range items {
		if i == cut {
			ss.close()
			return false
		}
		w(it)
	}
	if cut >= len(items) {
		ss.close()
		return false
	}
	w("Event: " + complete + "\r\n" + idLine(a) + "EventList: Complete\r\nListItems: " + strconv.Itoa(len(items)) + "\r\n\r\n")
	return true
}

func (ss *session) sortedPeers() []SIPPeer {
	s := ss.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []SIPPeer
	for _, p := range s.peers {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b SIPPeer) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

// sipPeers answers SIPpeers with PeerEntry events shaped as recorded.
func (ss *session) sipPeers(a Message) bool {
	var items []string
	for _, p := range ss.sortedPeers() {
		ip, port := "-none-", "0"
		if p.Addr.IsValid() {
			ip, port = p.Addr.Addr().String(), strconv.Itoa(int(p.Addr.Port()))
		}
		items = append(items, "Event: PeerEntry\r\n"+idLine(a)+
			"Channeltype: SIP\r\nObjectName: "+p.Name+"\r\nChanObjectType: peer\r\n"+
			"IPaddress: "+ip+"\r\nIPport: "+port+"\r\nDynamic: yes\r\nAutoForcerport: yes\r\n"+
			"Forcerport: no\r\nAutoComedia: no\r\nComedia: no\r\nVideoSupport: no\r\nTextSupport: no\r\n"+
			"ACL: no\r\nStatus: Unmonitored\r\nRealtimeDevice: no\r\nDescription: \r\nAccountcode: \r\n\r\n")
	}
	return ss.list(a, "Peer status list will follow", items, "PeerlistComplete")
}

// sipShowPeer answers SIPshowpeer with the recorded response, in two
// writes split mid-line as recorded.
func (ss *session) sipShowPeer(a Message) {
	name := a.Get("Peer")
	if name == "" {
		ss.write(errorReply(a, "Peer: <name> missing."))
		return
	}
	s := ss.srv
	s.mu.Lock()
	p, ok := s.peers[name]
	s.mu.Unlock()
	if !ok {
		ss.write(errorReply(a, "Peer "+name+" not found."))
		return
	}
	ip, port, regExpire, user, contact := "(null)", "0", "-1", "", ""
	if p.Addr.IsValid() {
		// chan_sip prints the address without brackets, IPv6 included;
		// the contact URI has them.
		ip, port, regExpire, user = p.Addr.Addr().String(), strconv.Itoa(int(p.Addr.Port())), "3605", p.Name
		contact = "sip:" + p.Name + "@" + p.Addr.String()
	}
	first := reply(a, "Success") + "Channeltype: SIP\r\nObjectName: " + p.Name + "\r\n" +
		"ChanObjectType: peer\r\nSecretExist: Y\r\nRemoteSecretExist: N\r\nMD5SecretExist: N\r\n" +
		"Context: dialgate-test\r\nLanguage: \r\nToneZone: <Not set>\r\nAMAflags: Unknown\r\n" +
		"CID-CallingPres: Presentation Allowed, Not Screened\r\nCallgroup: \r\nPickupgroup: "
	second := "\r\nNamed Callgroup: \r\nNamed Pickupgroup: \r\nMOHSuggest: \r\nVoiceMailbox: \r\n" +
		"TransferMode: open\r\nLastMsgsSent: 0\r\nMaxforwards: 0\r\nCall-limit: 0\r\nBusy-level: 0\r\n" +
		"MaxCallBR: 384 kbps\r\nDynamic: Y\r\nCallerid: \"\" <>\r\nRegExpire: " + regExpire + " seconds\r\n" +
		"SIP-AuthInsecure: no\r\nSIP-Forcerport: a\r\nSIP-Comedia: N\r\nACL: N\r\nSIP-CanReinvite: Y\r\n" +
		"SIP-DirectMedia: Y\r\nSIP-PromiscRedir: N\r\nSIP-UserPhone: N\r\nSIP-VideoSupport: N\r\n" +
		"SIP-TextSupport: N\r\nSIP-T.38Support: N\r\nSIP-T.38EC: Unknown\r\nSIP-T.38MaxDtgrm: 4294967295\r\n" +
		"SIP-Sess-Timers: Accept\r\nSIP-Sess-Refresh: uas\r\nSIP-Sess-Expires: 1800\r\nSIP-Sess-Min: 90\r\n" +
		"SIP-RTP-Engine: asterisk\r\nSIP-Encryption: N\r\nSIP-RTCP-Mux: N\r\nSIP-DTMFmode: info\r\n" +
		"ToHost: \r\nAddress-IP: " + ip + "\r\nAddress-Port: " + port + "\r\n" +
		"Default-addr-IP: (null)\r\nDefault-addr-port: 0\r\nDefault-Username: " + user + "\r\n" +
		"Codecs: (ulaw)\r\nStatus: Unmonitored\r\nSIP-Useragent: " + p.UserAgent + "\r\n" +
		"Reg-Contact: " + contact + "\r\nQualifyFreq: 60000 ms\r\nParkinglot: \r\n" +
		"SIP-Use-Reason-Header: N\r\nDescription: \r\n\r\n"
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.nc.Write([]byte(first))
	ss.nc.Write([]byte(second))
}

// pjsipError writes a res_pjsip error: its messages end in "\n", which
// Asterisk sends before the header's own CRLF.
func (ss *session) pjsipError(a Message, msg string) {
	ss.write(reply(a, "Error") + "Message: " + msg + "\n\r\n\r\n")
}

func (ss *session) endpoint(a Message) (Endpoint, bool) {
	name := a.Get("Endpoint")
	if name == "" {
		ss.pjsipError(a, "PJSIPShowEndpoint requires an endpoint name")
		return Endpoint{}, false
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "pjsip/") {
		name = name[6:]
	}
	s := ss.srv
	s.mu.Lock()
	e, ok := s.endpoints[name]
	s.mu.Unlock()
	if !ok {
		ss.pjsipError(a, "Unable to retrieve endpoint "+name)
	}
	return e, ok
}

// contactID is the sorcery ID: "aor;@hash" for a registered contact,
// "aor@@hash" for a static one.
func contactID(aor string, c Contact) string {
	sum := md5.Sum([]byte(c.URI))
	sep := ";@"
	if c.Static {
		sep = "@@"
	}
	return aor + sep + hex.EncodeToString(sum[:])
}

// callID is a stable stand-in for the REGISTER's Call-ID.
func callID(c Contact) string {
	sum := md5.Sum([]byte("call-id " + c.URI))
	return hex.EncodeToString(sum[:8])
}

func contactExpiry(c Contact) string {
	if c.Static {
		return "0"
	}
	return strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
}

func contactStatus(c Contact) string {
	if c.Status == "" {
		return "Reachable"
	}
	return c.Status
}

// pjsipShowEndpoint answers with EndpointDetail, AorDetail and one
// ContactStatusDetail per contact, fields in res_pjsip's order.
func (ss *session) pjsipShowEndpoint(a Message) bool {
	e, ok := ss.endpoint(a)
	if !ok {
		return true
	}
	id := idLine(a)
	var uris []string
	for _, c := range e.Contacts {
		uris = append(uris, e.Name+"/"+c.URI)
	}
	items := []string{
		"Event: EndpointDetail\r\n" + id + "ObjectType: endpoint\r\nObjectName: " + e.Name + "\r\n" +
			"Context: from-internal\r\nDisallow: \r\nAllow: (ulaw)\r\nAors: " + e.Name + "\r\n" +
			"Auth: " + e.Name + "\r\nDeviceState: Not in use\r\nActiveChannels: \r\n\r\n",
		"Event: AorDetail\r\n" + id + "ObjectType: aor\r\nObjectName: " + e.Name + "\r\n" +
			"MaxContacts: 5\r\nRemoveExisting: false\r\nQualifyFrequency: 60\r\n" +
			"TotalContacts: " + strconv.Itoa(len(e.Contacts)) + "\r\nContactsRegistered: " + strconv.Itoa(len(e.Contacts)) + "\r\n" +
			"EndpointName: " + e.Name + "\r\nContacts: " + strings.Join(uris, ",") + "\r\n\r\n",
	}
	for _, c := range e.Contacts {
		var b strings.Builder
		b.WriteString("Event: ContactStatusDetail\r\n" + id)
		b.WriteString("AOR: " + e.Name + "\r\nURI: " + c.URI + "\r\nUserAgent: " + c.UserAgent + "\r\n")
		b.WriteString("RegExpire: " + contactExpiry(c) + "\r\n")
		if c.ViaAddress != "" && !c.Static {
			b.WriteString("ViaAddress: " + c.ViaAddress + "\r\n")
		}
		if !c.Static {
			b.WriteString("CallID: " + callID(c) + "\r\n")
		}
		b.WriteString("Status: " + contactStatus(c) + "\r\nRoundtripUsec: N/A\r\nEndpointName: " + e.Name + "\r\n")
		b.WriteString("ID: " + contactID(e.Name, c) + "\r\nAuthenticateQualify: 0\r\nOutboundProxy: \r\nPath: \r\n")
		b.WriteString("QualifyFrequency: 60\r\nQualifyTimeout: 3.000000\r\n\r\n")
		items = append(items, b.String())
	}
	return ss.list(a, "Following are Events for each object associated with the Endpoint", items, "EndpointDetailComplete")
}

// pjsipShowContacts answers with one ContactList per registered contact
// of every endpoint; static contacts are not in Asterisk's contact store.
func (ss *session) pjsipShowContacts(a Message) bool {
	s := ss.srv
	s.mu.Lock()
	var eps []Endpoint
	for _, e := range s.endpoints {
		eps = append(eps, e)
	}
	s.mu.Unlock()
	slices.SortFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.Name, b.Name) })
	var items []string
	for _, e := range eps {
		for _, c := range e.Contacts {
			if c.Static {
				continue
			}
			viaAddr, viaPort := c.ViaAddress, "0"
			if i := strings.LastIndexByte(viaAddr, ':'); i >= 0 && strings.Count(viaAddr, ":") == 1 {
				viaAddr, viaPort = viaAddr[:i], viaAddr[i+1:]
			} else if ap, err := netip.ParseAddrPort(viaAddr); err == nil {
				viaAddr, viaPort = ap.Addr().String(), strconv.Itoa(int(ap.Port()))
			}
			items = append(items, "Event: ContactList\r\n"+idLine(a)+
				"ObjectType: contact\r\nObjectName: "+contactID(e.Name, c)+"\r\n"+
				"ViaAddr: "+viaAddr+"\r\nViaPort: "+viaPort+"\r\nQualifyTimeout: 3.000000\r\n"+
				"CallId: "+callID(c)+"\r\nRegServer: \r\nPruneOnBoot: false\r\n"+
				"Path: \r\nEndpoint: "+e.Name+"\r\nAuthenticateQualify: false\r\nUri: "+c.URI+"\r\n"+
				"QualifyFrequency: 60\r\nUserAgent: "+c.UserAgent+"\r\nExpirationTime: "+contactExpiry(c)+"\r\n"+
				"OutboundProxy: \r\nStatus: "+contactStatus(c)+"\r\nRoundtripUsec: N/A\r\n\r\n")
		}
	}
	return ss.list(a, "A listing of Contacts follows, presented as ContactList events", items, "ContactListComplete")
}
