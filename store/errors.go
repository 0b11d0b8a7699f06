package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the package returns for one of these
// conditions wraps the sentinel, so test with errors.Is; the message names
// the account, entry or file concerned.
var (
	// ErrNotFound reports that the named record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists reports that a record that must be unique already exists.
	ErrExists = errors.New("already exists")
	// ErrLocked reports that another process holds the database open.
	ErrLocked = errors.New("database is held by another process")
	// ErrSchema reports a database or record written in a schema version
	// this build does not understand.
	ErrSchema = errors.New("unsupported schema version")
	// ErrInvalid reports a record the store refuses to write because it is
	// incomplete or out of range (missing name, unknown kind, bad ID,
	// permission code outside 0-9).
	ErrInvalid = errors.New("invalid")
	// ErrNoDatabase reports that the database file is missing, empty or
	// was never initialised. Only Open with Options.Create (what
	// "dialgate init" does) makes a new database; anything else refuses
	// rather than start from nothing, since an empty whitelist applied to
	// the kernel would lock every administrator and trunk out.
	ErrNoDatabase = errors.New("no database")
	// ErrDamaged reports a database file that is truncated, overwritten or
	// inconsistent. The file was not changed; the remedy is the last
	// backup ("dialgate db backup").
	ErrDamaged = errors.New("database is damaged")
)

// detailError carries a complete human message while still matching its
// sentinel (and any underlying cause) under errors.Is and errors.As. It
// exists because appending ": <sentinel>" with %w would make messages such
// as the lock hint read badly.
type detailError struct {
	msg  string
	errs []error
}

func (e *detailError) Error() string   { return e.msg }
func (e *detailError) Unwrap() []error { return e.errs }

func newError(msg string, sentinel error, cause error) error {
	errs := []error{sentinel}
	if cause != nil {
		errs = append(errs, cause)
	}
	return &detailError{msg: msg, errs: errs}
}

func invalidf(format string, args ...any) error {
	return newError(fmt.Sprintf(format, args...), ErrInvalid, nil)
}
