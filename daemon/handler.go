package daemon

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// The LocalAPI handler: the routes, the peer check, and the mapping of
// requests and errors onto the daemon's methods. The contract (types,
// codes) is package localapi's.

type peerKey struct{}

// withPeer records the connecting process's credentials: the socket mode
// already limits access to root, and checking the peer's uid as well
// keeps a mis-set mode from opening the firewall's controls.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, cred)
}

// Handler returns the LocalAPI.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", d.handle(func(r *http.Request) (any, error) { return d.Status(r.Context()) }))
	mux.HandleFunc("GET /v1/accounts", d.handle(func(r *http.Request) (any, error) { return d.Accounts() }))
	mux.HandleFunc("POST /v1/accounts", d.handle(func(r *http.Request) (any, error) {
		var req localapi.AddAccountRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.AddAccount(r.Context(), req)
	}))
	mux.HandleFunc("DELETE /v1/accounts/{name}", d.handle(func(r *http.Request) (any, error) {
		return d.DeleteAccount(r.Context(), r.PathValue("name"), guardOf(r))
	}))
	mux.HandleFunc("PATCH /v1/accounts/{name}", d.handle(func(r *http.Request) (any, error) {
		var req localapi.UpdateAccountRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.UpdateAccount(r.Context(), r.PathValue("name"), req, guardOf(r))
	}))
	mux.HandleFunc("PUT /v1/accounts/{name}/passcode", d.handle(func(r *http.Request) (any, error) {
		var req localapi.SetPasscodeRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.SetPasscode(r.Context(), r.PathValue("name"), req.Passcode)
	}))
	mux.HandleFunc("GET /v1/audit", d.handle(func(r *http.Request) (any, error) {
		q := r.URL.Query()
		f := localapi.AuditFilter{Account: q.Get("account"), Action: q.Get("action"), Result: q.Get("result")}
		f.Limit, _ = strconv.Atoi(q.Get("limit"))
		if s := q.Get("since"); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("%w: since %q: want an RFC 3339 time", auth.ErrInvalid, s)
			}
			f.Since = t
		}
		return d.Audit(f)
	}))
	mux.HandleFunc("GET /v1/drops", d.handle(func(r *http.Request) (any, error) {
		f, err := localapi.ParseDropFilter(r.URL.Query())
		if err != nil {
			return nil, err
		}
		return d.Drops(r.Context(), f)
	}))
	mux.HandleFunc("GET /v1/lockouts", d.handle(func(r *http.Request) (any, error) { return d.Lockouts() }))
	mux.HandleFunc("GET /v1/blocks", d.handle(func(r *http.Request) (any, error) { return d.Blocks(r.Context()) }))
	mux.HandleFunc("DELETE /v1/blocks", d.handle(func(r *http.Request) (any, error) {
		return d.ClearBlocks(r.Context(), r.URL.Query().Get("addr"), r.URL.Query().Get("all") == "true")
	}))
	mux.HandleFunc("DELETE /v1/lockouts", d.handle(func(r *http.Request) (any, error) {
		return d.ClearLockouts(r.Context(), r.URL.Query().Get("key"), r.URL.Query().Get("all") == "true")
	}))
	mux.HandleFunc("GET /v1/fqdn", d.handle(func(r *http.Request) (any, error) { return d.FQDNs() }))
	mux.HandleFunc("POST /v1/fqdn/refresh", d.handle(func(r *http.Request) (any, error) {
		var req localapi.RefreshRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if _, err := d.RefreshFQDNs(r.Context(), req.Names, false); err != nil {
			return nil, err
		}
		return d.FQDNs()
	}))
	mux.HandleFunc("GET /v1/sip-domains", d.handle(func(r *http.Request) (any, error) { return d.SIPDomains() }))
	mux.HandleFunc("POST /v1/sip-domains/{domain}", d.handle(func(r *http.Request) (any, error) {
		return d.AddSIPDomain(r.Context(), r.PathValue("domain"))
	}))
	mux.HandleFunc("DELETE /v1/sip-domains/{domain}", d.handle(func(r *http.Request) (any, error) {
		return d.DeleteSIPDomain(r.Context(), r.PathValue("domain"))
	}))
	mux.HandleFunc("GET /v1/providers", d.handle(func(r *http.Request) (any, error) { return d.Providers() }))
	mux.HandleFunc("POST /v1/providers", d.handle(func(r *http.Request) (any, error) {
		var p auth.Provider
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		return d.AddProvider(r.Context(), p)
	}))
	mux.HandleFunc("POST /v1/providers/{op}", d.handle(func(r *http.Request) (any, error) {
		var req localapi.ProvidersRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		switch r.PathValue("op") {
		case "enable":
			return d.EnableProviders(r.Context(), req.Names, req.All)
		case "disable":
			return d.DisableProviders(r.Context(), req.Names, req.All)
		}
		return nil, fmt.Errorf("%w: unknown operation %q", store.ErrNotFound, r.PathValue("op"))
	}))
	mux.HandleFunc("POST /v1/import", d.handle(func(r *http.Request) (any, error) {
		var req localapi.ImportRequest
		if err := decodeLimit(r, &req, 16<<20); err != nil {
			return nil, err
		}
		return d.Import(r.Context(), req)
	}))
	mux.HandleFunc("POST /v1/dialplan/reload", d.handle(func(r *http.Request) (any, error) {
		return struct{}{}, d.ReloadDialplan(r.Context())
	}))
	mux.HandleFunc("GET /v1/grants", d.handle(func(r *http.Request) (any, error) { return d.Grants() }))
	mux.HandleFunc("DELETE /v1/grants/{grant}", d.handle(func(r *http.Request) (any, error) {
		return d.RevokeGrants(r.Context(), r.PathValue("grant"), guardOf(r))
	}))
	mux.HandleFunc("POST /v1/entries", d.handle(func(r *http.Request) (any, error) {
		var req localapi.AddEntryRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.AddEntry(r.Context(), req)
	}))
	mux.HandleFunc("DELETE /v1/entries/{entry}", d.handle(func(r *http.Request) (any, error) {
		return d.DeleteEntry(r.Context(), r.PathValue("entry"), guardOf(r))
	}))
	mux.HandleFunc("PATCH /v1/entries/{entry}", d.handle(func(r *http.Request) (any, error) {
		var req localapi.UpdateEntryRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.UpdateEntry(r.Context(), r.PathValue("entry"), req, guardOf(r))
	}))
	mux.HandleFunc("GET /v1/export", d.handle(func(r *http.Request) (any, error) { return d.Export() }))
	mux.HandleFunc("POST /v1/explain", d.handle(func(r *http.Request) (any, error) {
		var req localapi.ExplainRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.Explain(r.Context(), req)
	}))
	mux.HandleFunc("POST /v1/reload", d.handle(func(r *http.Request) (any, error) {
		confirm, err := time.ParseDuration(cmp.Or(r.URL.Query().Get("confirm"), "0s"))
		if err != nil || confirm < 0 || confirm > time.Hour {
			return nil, fmt.Errorf("%w: confirm %q: a duration up to 1h", auth.ErrInvalid, r.URL.Query().Get("confirm"))
		}
		return struct{}{}, d.ReloadConfirm(r.Context(), guardOf(r), confirm)
	}))
	mux.HandleFunc("POST /v1/confirm", d.handle(func(r *http.Request) (any, error) {
		return struct{}{}, d.Confirm()
	}))
	d.dbRoutes(mux)
	return d.authorize(noteSSHUnknown(mux))
}

func (d *Daemon) authorize(next http.Handler) http.Handler {
	self := os.Geteuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(peerKey{}).(*syscall.Ucred)
		if cred == nil || (cred.Uid != 0 && int(cred.Uid) != self) {
			d.log.Warn("localapi: refused peer", "cred", cred)
			localapi.WriteError(w, localapi.CodeForbidden, localapi.ErrForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guardOf reads the SSH session the CLI runs in from the request.
func guardOf(r *http.Request) Guard {
	g := Guard{Force: r.Header.Get(localapi.HeaderForce) == "1"}
	if v := r.Header.Get(localapi.HeaderSSH); v != "" {
		ip, port, ok := strings.Cut(v, " ")
		a, err1 := netip.ParseAddr(ip)
		p, err2 := strconv.ParseUint(port, 10, 16)
		if ok && err1 == nil && err2 == nil {
			g.SSH = netip.AddrPortFrom(a.Unmap(), uint16(p))
		}
	}
	return g
}

const maxBody = 64 << 10

func decode(r *http.Request, v any) error { return decodeLimit(r, v, maxBody) }

func decodeLimit(r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", auth.ErrInvalid, err)
	}
	return nil
}

func (d *Daemon) handle(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		if err != nil {
			code := localapi.CodeOf(err)
			if code == localapi.CodeInternal {
				d.log.Error("localapi", "path", r.URL.Path, "err", err)
			}
			localapi.WriteError(w, code, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(localapi.EmptyLists(v))
	}
}
