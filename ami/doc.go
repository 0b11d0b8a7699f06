// Package ami is a client for the Asterisk Manager Interface, the
// text protocol on TCP port 5038 through which programs query and
// control Asterisk.
//
// The package owns the protocol and nothing above it: connecting and
// logging in (plain or MD5 challenge), sending actions and matching their
// answers by ActionID (Action, ActionList, Command, Ping, Logoff),
// delivering unsolicited events (Subscribe), keeping a connection alive
// and re-establishing it (Run), and a few lookups that need Asterisk
// knowledge rather than protocol knowledge: where a chan_sip peer or a
// PJSIP endpoint is registered from (SIPPeerAddress,
// PJSIPContactAddresses, RegisteredAddresses). It knows nothing about
// what those addresses are used for.
//
// The API follows net/http: a Config holds the settings, Dial returns a
// connected Client, and New plus Run give a supervised one, as
// http.Server plus ListenAndServe do. Every call that can block takes a
// context.Context, and every wait has a deadline.
//
// # Asterisk's behaviour, as recorded from Asterisk 20 (testdata)
//
//   - On connect Asterisk sends a banner line, "Asterisk Call Manager/9.0.0"
//     (AMI 9.0.0 in Asterisk 20), with no blank line after it; the
//     version is available as Client.Version.
//   - Everything else is messages: "Key: Value" lines ending in CRLF, a
//     message ending with an empty line. Values may be empty and may hold
//     ':'; keys repeat (Output:), so Message keeps an ordered list. A
//     bare LF also ends a line: res_pjsip's error messages end in one
//     before the CRLF. Empty lines between messages are skipped.
//   - Messages arrive in arbitrary TCP chunks, even split mid-line
//     (SIPshowpeer's long response), and several per chunk (Login's
//     response with the FullyBooted event).
//   - A failed login is answered after about a second with "Response:
//     Error / Message: Authentication failed", then Asterisk closes the
//     connection (ErrAuth). Other sessions see an InvalidPassword event.
//   - Command answers, since Asterisk 14, "Response: Success / Message:
//     Command output follows" with one "Output:" header per CLI line; an
//     unknown CLI command the same with "Response: Error". Asterisk 13
//     and older answer "Response: Follows", raw lines and
//     "--END COMMAND--"; Command reads both.
//   - List actions (SIPpeers, PJSIPShowEndpoint, ...) answer "Response:
//     Success / EventList: start", one event per item carrying the
//     ActionID, then a "...Complete" event with "EventList: Complete".
//     A list is held in memory until it is complete, so ActionList bounds
//     it (Config.MaxListEvents, MaxListBytes; ErrListTooLarge): a peer
//     that streams list events without end must not exhaust memory.
//   - Async Originate's OriginateResponse event carries the ActionID but
//     comes after the response: events with an ActionID that no list is
//     waiting for go to subscribers, not to the void.
//   - SIPshowpeer says "Address-IP: (null)" for an unregistered peer and
//     prints IPv6 without brackets; PJSIP's ViaAddress appends ":port" to
//     the host as stored, which for IPv6 is ambiguous.
//   - Logoff is answered "Response: Goodbye" and the connection closed.
//
// Header values sent are checked: CR, LF or NUL in any of them would let
// a value inject headers or whole actions, and is refused with
// ErrInvalidHeader before anything is sent. Secrets (the login secret,
// the MD5 key) never reach a log or an error; actions are logged at Debug
// by name and ActionID only.
//
// # Usage
//
// A supervised client, as a daemon runs it:
//
//	c := ami.New(ami.Config{
//		Addr:     "127.0.0.1:5038",
//		Username: "dialgate",
//		Secret:   secret,
//		Events:   "off", // actions only
//	})
//	go c.Run(ctx) // reconnects until ctx ends
//	...
//	addrs, err := c.RegisteredAddresses(ctx, "alice")
//	switch {
//	case errors.Is(err, ami.ErrNotConnected):
//		// Asterisk is down or restarting: use another source
//	case errors.Is(err, ami.ErrNotFound):
//		// no such extension
//	}
//
// A one-shot client:
//
//	c, err := ami.Dial(ctx, ami.Config{Username: "admin", Secret: s, MD5: true})
//	if err != nil {
//		return err // errors.Is(err, ami.ErrAuth) for wrong credentials
//	}
//	defer c.Logoff(ctx)
//	out, err := c.Command(ctx, "core show version")
//
// The amitest subpackage plays Asterisk's side, for tests.
package ami
