package agi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/dialgate/dialgate/agi"
	"github.com/dialgate/dialgate/agi/agitest"
)

// A handler that asks for a code, reads it back and hangs up, driven by
// agitest in place of Asterisk.
func ExampleServeMux() {
	mux := agi.NewServeMux()
	mux.HandleFunc("/authorize", func(ctx context.Context, s *agi.Session) {
		if err := s.Answer(ctx); err != nil {
			return
		}
		code, timedOut, err := s.GetData(ctx, "enter-code", 5*time.Second, 6)
		if errors.Is(err, agi.ErrHangup) {
			return // the caller left; the digits are gone
		}
		if err != nil || timedOut {
			_ = s.Hangup(ctx)
			return
		}
		_ = s.SayDigits(ctx, code, "")
		_ = s.Hangup(ctx)
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &agi.Server{
		Handler:   mux,
		AllowFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:    slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)

	t, err := agitest.Dial(ctx, l.Addr().String(), agitest.Call{
		Script: "authorize?lang=en",
		Digits: []string{"0042#"},
	})
	if err != nil {
		panic(err)
	}
	for _, c := range t.Commands {
		fmt.Println(c)
	}
	// Output:
	// ANSWER
	// GET DATA enter-code 5000 6
	// SAY DIGITS 0042 ""
	// HANGUP
}
