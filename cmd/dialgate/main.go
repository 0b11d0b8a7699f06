// Command dialgate is the whitelist firewall and phone door for Asterisk
// PBX servers. Run `dialgate --help` for the commands; the work is done
// in the packages, this file only parses flags and prints.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dialgate/dialgate/daemon"
)

// Exit codes, documented in the README.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitNotRunning = 3
	// exitNotProtected: `dialgate status` found the server not filtered
	// by dialgate's firewall.
	exitNotProtected = 4
)

var version = "dev"

func main() {
	root := newRoot()
	root.SetOut(os.Stdout)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		os.Exit(exitOK)
	}
	var ne notProtected
	if errors.As(err, &ne) {
		os.Exit(exitNotProtected) // status printed it already
	}
	fmt.Fprintln(os.Stderr, "dialgate:", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		os.Exit(exitUsage)
	case errors.Is(err, daemon.ErrNotRunning):
		os.Exit(exitNotRunning)
	}
	os.Exit(exitError)
}

// notProtected ends `dialgate status` with exitNotProtected.
type notProtected struct{}

func (notProtected) Error() string { return "the server is not protected by dialgate" }

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
