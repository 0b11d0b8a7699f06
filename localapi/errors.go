package localapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/door"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// Code is the machine-readable reason of a refused request: the "code"
// of every non-2xx answer's body. The daemon finds it from the error it
// returned (CodeOf), the client maps it back to that error's sentinel
// (APIError.Unwrap), both through one table, codes.
type Code string

// The codes. Scripts read them from --json errors: renaming one breaks
// them.
const (
	CodeForce            Code = "force"              // refused without --force
	CodeInvalid          Code = "invalid"            // bad input
	CodeNotFound         Code = "not_found"          // no such account, entry, grant, ...
	CodeExists           Code = "exists"             // already there
	CodeLockout          Code = "lockout"            // would cut off the SSH session
	CodeAMIDisabled      Code = "ami_disabled"       // needs [ami] enabled
	CodeNothingToConfirm Code = "nothing_to_confirm" // no reload waits for confirm
	CodeNeedsRestart     Code = "needs_restart"      // reload applied but for restart-only settings
	CodeForbidden        Code = "forbidden"          // the peer is not root (or the daemon's user)
	CodeInternal         Code = "internal"           // anything else
)

// Sentinels of the LocalAPI's own codes. The daemon returns the first
// three; ErrForbidden is the socket's answer to a peer that is not root.
var (
	// ErrAMIDisabled is returned by actions that need the Asterisk
	// Manager Interface when [ami] is not enabled.
	ErrAMIDisabled = errors.New("the Asterisk Manager Interface is not enabled ([ami] enabled = true in the config)")
	// ErrNothingToConfirm is returned by Confirm when no reload waits.
	ErrNothingToConfirm = errors.New("no reload is waiting for confirmation")
	// ErrNeedsRestart wraps a reload's report of settings that only a
	// restart applies; everything else was applied.
	ErrNeedsRestart = errors.New("reload applied, except settings that take a restart")
	// ErrForbidden refuses a peer that is neither root nor the daemon's
	// own user.
	ErrForbidden = errors.New("the dialgate LocalAPI is for root only")
	// ErrInternal is what an internal error reads as on the client.
	ErrInternal = errors.New("dialgate daemon: internal error")
)

// codeInfo is one row of the table.
type codeInfo struct {
	Code   Code
	Status int
	// Err is the sentinel the client maps the code back to
	// (errors.Is(err, Err) holds for the APIError), and the first the
	// daemon recognises.
	Err error
	// Also are further errors the daemon answers with this code; the
	// client does not tell them apart from Err.
	Also []error
}

// codes is the one table of codes: the daemon classifies an error by the
// first row whose Err or Also it wraps (so its order matters: force
// before invalid); the client maps a code back through it. CodeInternal
// is last and takes everything else.
var codes = []codeInfo{
	{CodeForce, http.StatusBadRequest, auth.ErrNeedsForce, nil},
	{CodeInvalid, http.StatusBadRequest, auth.ErrInvalid, []error{store.ErrInvalid, auth.ErrNotGrantable, door.ErrAdmitted}},
	{CodeNotFound, http.StatusNotFound, store.ErrNotFound, nil},
	{CodeExists, http.StatusConflict, store.ErrExists, nil},
	{CodeLockout, http.StatusConflict, firewall.ErrLockout, nil},
	{CodeAMIDisabled, http.StatusConflict, ErrAMIDisabled, nil},
	{CodeNothingToConfirm, http.StatusConflict, ErrNothingToConfirm, nil},
	{CodeNeedsRestart, http.StatusConflict, ErrNeedsRestart, nil},
	{CodeForbidden, http.StatusForbidden, ErrForbidden, nil},
	{CodeInternal, http.StatusInternalServerError, ErrInternal, nil},
}

func lookup(c Code) (codeInfo, bool) {
	for _, ci := range codes {
		if ci.Code == c {
			return ci, true
		}
	}
	return codeInfo{}, false
}

// Codes lists every code, in the order the daemon tries them.
func Codes() []Code {
	out := make([]Code, len(codes))
	for i, ci := range codes {
		out[i] = ci.Code
	}
	return out
}

// Known reports whether c is in the table.
func (c Code) Known() bool {
	_, ok := lookup(c)
	return ok
}

// Status is c's HTTP status; an unknown code is an internal error.
func (c Code) Status() int {
	if ci, ok := lookup(c); ok {
		return ci.Status
	}
	return http.StatusInternalServerError
}

// Err is the sentinel error c maps back to on the client; nil for an
// unknown code.
func (c Code) Err() error {
	ci, _ := lookup(c)
	return ci.Err
}

// CodeOf is the code the daemon answers err with.
func CodeOf(err error) Code {
	for _, ci := range codes {
		if errors.Is(err, ci.Err) {
			return ci.Code
		}
		for _, e := range ci.Also {
			if errors.Is(err, e) {
				return ci.Code
			}
		}
	}
	return CodeInternal
}

// ErrorBody is every non-2xx answer's body.
type ErrorBody struct {
	Error string `json:"error"`
	Code  Code   `json:"code"`
}

// WriteError answers with err under code, with code's status. A code
// outside the table is written as CodeInternal: the daemon never sends
// one the client cannot map.
func WriteError(w http.ResponseWriter, code Code, err error) {
	if !code.Known() {
		code = CodeInternal
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code.Status())
	json.NewEncoder(w).Encode(ErrorBody{Error: err.Error(), Code: code})
}

// APIError is an error the daemon answered with. errors.Is sees through
// it to its code's sentinel: errors.Is(err, store.ErrNotFound) holds for
// a not_found answer.
type APIError struct {
	Status  int
	Code    Code
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Unwrap is the sentinel of e's code (nil for a code outside the table,
// from a newer daemon).
func (e *APIError) Unwrap() error { return e.Code.Err() }

// apiError reads a non-2xx answer.
func apiError(status int, statusText string, body []byte) *APIError {
	var eb ErrorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("daemon answered %s", statusText)
	}
	return &APIError{Status: status, Code: eb.Code, Message: eb.Error}
}
