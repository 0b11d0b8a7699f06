// Command dialgate is the whitelist firewall and phone door for Asterisk
// PBX servers. Run `dialgate --help` for the commands; the work is done
// in the packages, this file only parses flags and prints.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dialgate/dialgate/localapi"
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
	// exitStoreUnreachable: `dialgate status` found the server protected
	// but cut off from its shared store (etcd): it filters with its last
	// state, and changes and the phone door are refused.
	exitStoreUnreachable = 5
)

// Set at build time by the Makefile (-ldflags -X, see scripts/version.sh
// and README, Versions): version is `git describe --tags` without the
// leading v, commit the full commit hash, date the build date (RFC 3339,
// from SOURCE_DATE_EPOCH: the commit's date, so a rebuild is identical).
// A plain `go build` leaves them as below.
var (
	version = "dev"
	commit  = ""
	date    = ""
)

func main() {
	root := newRoot()
	root.SetOut(os.Stdout)
	err := root.ExecuteContext(context.Background())
	code := exitCode(err)
	switch {
	case err == nil, code == exitNotProtected, code == exitStoreUnreachable: // status printed it already
	case strings.HasPrefix(err.Error(), root.Name()+" "), strings.HasPrefix(err.Error(), root.Name()+":"):
		fmt.Fprintln(os.Stderr, err) // names the command already
	default:
		fmt.Fprintln(os.Stderr, "dialgate:", err)
	}
	os.Exit(code)
}

// exitCode maps the error a command returned to the documented exit code.
func exitCode(err error) int {
	var ne notProtected
	var su storeUnreachable
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ne):
		return exitNotProtected
	case errors.As(err, &su):
		return exitStoreUnreachable
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, localapi.ErrNotRunning):
		return exitNotRunning
	}
	return exitError
}

// notProtected ends `dialgate status` with exitNotProtected.
type notProtected struct{}

func (notProtected) Error() string { return "the server is not protected by dialgate" }

// storeUnreachable ends `dialgate status` with exitStoreUnreachable.
type storeUnreachable struct{}

func (storeUnreachable) Error() string { return "the shared store is unreachable" }

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
