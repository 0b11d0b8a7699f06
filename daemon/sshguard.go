package daemon

import (
	"context"
	"net/http"

	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// The CLI may run in an SSH session whose address it cannot find (see
// sshpeer): then the lockout guard cannot protect that session, and
// every change the request makes says so in its audit record.

type sshUnknownKey struct{}

// noteSSHUnknown carries the CLI's HeaderSSHUnknown into the request's
// context.
func noteSSHUnknown(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := localapi.HeaderSafe(r.Header.Get(localapi.HeaderSSHUnknown)); v != "" {
			r = r.WithContext(context.WithValue(r.Context(), sshUnknownKey{}, v))
		}
		next.ServeHTTP(w, r)
	})
}

// guardOff is the audit note for a change made from an SSH session the
// guard could not see, or "".
func guardOff(ctx context.Context) string {
	if v, _ := ctx.Value(sshUnknownKey{}).(string); v != "" {
		return "SSH lockout guard off: " + v
	}
	return ""
}

// withNote appends note to an audit detail.
func withNote(detail, note string) string {
	switch {
	case note == "":
		return detail
	case detail == "":
		return note
	}
	return detail + "; " + note
}

// notingTx adds a note to every audit record written through it.
type notingTx struct {
	store.Tx
	note string
}

func (t notingTx) Audit(r store.AuditRecord) error {
	r.Detail = withNote(r.Detail, t.note)
	return t.Tx.Audit(r)
}
