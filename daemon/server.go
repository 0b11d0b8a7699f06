package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// Run applies the stored state to the kernel and serves the LocalAPI
// until ctx is done. It leaves the firewall in place when it returns.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.purgeExpired(); err != nil {
		return err
	}
	d.refreshFQDNs(ctx)
	start := time.Now()
	d.mu.Lock()
	err := d.applyStored(ctx, false)
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("initial apply: %w", err)
	}
	d.log.Info("firewall in place", "duration", time.Since(start))
	ln, err := listenSocket(d.config().Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext:       withPeer,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	d.log.Info("dialgate serving", "socket", d.config().Socket, "db", d.db.Path())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("localapi: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	os.Remove(d.config().Socket)
	d.log.Info("dialgate stopped; firewall left in place")
	return err
}

// listenSocket creates the LocalAPI socket, mode 0600 in a 0700
// directory. A live socket means another daemon runs: refuse. A dead one
// is a leftover from a crash: replace it.
func listenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("localapi: %s is in use: another dialgate daemon is running", path)
	}
	os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("localapi: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("localapi: %w", err)
	}
	return ln, nil
}

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
	mux.HandleFunc("GET /v1/accounts", d.handle(func(r *http.Request) (any, error) {
		st, err := d.Status(r.Context())
		return st.Accounts, err
	}))
	mux.HandleFunc("POST /v1/accounts", d.handle(func(r *http.Request) (any, error) {
		var req AddAccountRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.AddAccount(r.Context(), req)
	}))
	mux.HandleFunc("DELETE /v1/accounts/{name}", d.handle(func(r *http.Request) (any, error) {
		return d.DeleteAccount(r.Context(), r.PathValue("name"), guardOf(r))
	}))
	mux.HandleFunc("POST /v1/entries", d.handle(func(r *http.Request) (any, error) {
		var req AddEntryRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return d.AddEntry(r.Context(), req)
	}))
	mux.HandleFunc("DELETE /v1/entries/{entry}", d.handle(func(r *http.Request) (any, error) {
		return d.DeleteEntry(r.Context(), r.PathValue("entry"), guardOf(r))
	}))
	mux.HandleFunc("POST /v1/reload", d.handle(func(r *http.Request) (any, error) {
		return struct{}{}, d.Reload(r.Context(), guardOf(r))
	}))
	return d.authorize(mux)
}

func (d *Daemon) authorize(next http.Handler) http.Handler {
	self := os.Geteuid()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(peerKey{}).(*syscall.Ucred)
		if cred == nil || (cred.Uid != 0 && int(cred.Uid) != self) {
			d.log.Warn("localapi: refused peer", "cred", cred)
			writeError(w, http.StatusForbidden, "forbidden", errors.New("the dialgate LocalAPI is for root only"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guardOf reads the SSH session the CLI runs in from the request.
func guardOf(r *http.Request) Guard {
	g := Guard{Force: r.Header.Get(HeaderForce) == "1"}
	if v := r.Header.Get(HeaderSSH); v != "" {
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

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
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
			status, code := classify(err)
			if status == http.StatusInternalServerError {
				d.log.Error("localapi", "path", r.URL.Path, "err", err)
			}
			writeError(w, status, code, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
}

func classify(err error) (int, string) {
	switch {
	case errors.Is(err, auth.ErrNeedsForce):
		return http.StatusBadRequest, "force"
	case errors.Is(err, auth.ErrInvalid), errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, firewall.ErrLockout):
		return http.StatusConflict, "lockout"
	}
	return http.StatusInternalServerError, "internal"
}

func writeError(w http.ResponseWriter, status int, code string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Error: err.Error(), Code: code})
}
