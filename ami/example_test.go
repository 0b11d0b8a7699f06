package ami_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/dialgate/dialgate/ami"
	"github.com/dialgate/dialgate/ami/amitest"
)

// A one-shot session: log in with the MD5 challenge, run a CLI command,
// log off. amitest plays Asterisk.
func ExampleDial() {
	srv, err := amitest.Start(amitest.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ami.Dial(ctx, ami.Config{
		Addr:     srv.Addr(),
		Username: "harness",
		Secret:   "harness-secret",
		MD5:      true,
		Events:   "off",
		Logger:   slog.New(slog.DiscardHandler),
	})
	if errors.Is(err, ami.ErrAuth) {
		fmt.Println("wrong credentials")
		return
	}
	if err != nil {
		panic(err)
	}
	defer c.Logoff(ctx)

	fmt.Println("AMI", c.Version())
	out, err := c.Command(ctx, "core show channels")
	if err != nil {
		panic(err)
	}
	fmt.Println(out[1])
	// Output:
	// AMI 9.0.0
	// 0 active channels
}

// A supervised client, as a daemon keeps one: Run reconnects in the
// background, and lookups fail fast while Asterisk is away.
func ExampleClient_Run() {
	srv, err := amitest.Start(amitest.Options{
		NoPJSIP: true, // like the recorded Asterisk 20: chan_sip only
		SIPPeers: []amitest.SIPPeer{
			{Name: "traveler", Addr: netip.MustParseAddrPort("203.0.113.7:5060")},
		},
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	up := make(chan struct{}, 1)
	c := ami.New(ami.Config{
		Addr:     srv.Addr(),
		Username: "harness",
		Secret:   "harness-secret",
		Events:   "off",
		Logger:   slog.New(slog.DiscardHandler),
		OnStateChange: func(s ami.State, err error) {
			if s == ami.Connected {
				select {
				case up <- struct{}{}:
				default:
				}
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	<-up

	addrs, err := c.RegisteredAddresses(ctx, "traveler")
	fmt.Println(addrs, err)
	_, err = c.RegisteredAddresses(ctx, "nobody")
	fmt.Println(errors.Is(err, ami.ErrNotFound))
	// Output:
	// [203.0.113.7:5060] <nil>
	// true
}
