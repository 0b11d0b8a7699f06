// Package agi is a FastAGI server: Asterisk's AGI() dialplan application,
// given an agi://host:port/path URL, connects to it and lets a program
// drive the call with text commands.
//
// The package owns the wire protocol and nothing above it: accepting and
// vetting connections (Server), routing them by URL path (ServeMux),
// reading the agi_* environment block (Env), sending commands with safe
// argument quoting and reading replies (Session, Reply), and the errors
// that make Asterisk's answers testable with errors.Is (ErrHangup,
// ErrNotPermitted, ...). It knows nothing about what a call is for.
//
// The API follows net/http: a Handler serves one session, a ServeMux is a
// Handler that routes, and a Server holds the limits. Every blocking call
// takes a context.Context, and every read from Asterisk has a deadline.
//
// # Asterisk's behaviour, as recorded from Asterisk 20
//
//   - Lines end in LF; commands are sent with LF only (a CR would become
//     part of the last argument).
//   - After the caller hangs up, Asterisk sends an unsolicited "HANGUP"
//     line, usually just ahead of the reply to the next command. Session
//     skips it and records it (Session.HungUp). The connection stays open:
//     GET/SET VARIABLE keep working, media commands and HANGUP get 511
//     (ErrNotPermitted, which also matches ErrHangup).
//   - GET DATA interrupted by a hangup answers result=-1: the digits typed
//     so far are lost.
//   - GET VARIABLE answers result=0 for an unset variable and
//     "result=1 ()" for an empty one.
//   - Closing the connection early is not an error to Asterisk: the
//     dialplan continues at the next priority with AGISTATUS=SUCCESS.
//
// # Usage
//
//	mux := agi.NewServeMux()
//	mux.HandleFunc("/authorize", func(ctx context.Context, s *agi.Session) {
//		if err := s.Answer(ctx); err != nil {
//			return
//		}
//		digits, _, err := s.GetData(ctx, "enter-password", 5*time.Second, 8)
//		if errors.Is(err, agi.ErrHangup) {
//			return // the caller left; nothing to say
//		}
//		...
//		_ = s.Hangup(ctx)
//	})
//	l, err := net.Listen("tcp", "127.0.0.1:4573")
//	...
//	srv := &agi.Server{
//		Handler:   mux,
//		AllowFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
//	}
//	err = srv.Serve(ctx, l)
//
// The agitest subpackage plays Asterisk's side, for tests.
package agi
