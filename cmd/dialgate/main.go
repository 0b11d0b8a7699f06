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
)

var version = "dev"

func main() {
	root := newRoot()
	root.SetOut(os.Stdout)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		os.Exit(exitOK)
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

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
