package localapi

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/store"
)

// serveErrors answers GET /v1/status with what fail returns, the way the
// daemon's handler does (CodeOf, WriteError), on a temporary socket, and
// returns a client for it.
func serveErrors(t *testing.T, fail func() (Code, error)) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := fail()
		WriteError(w, code, err)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewClient(sock)
}

// TestCodesRoundTrip: every error the table names, as the daemon returns
// it (wrapped, with detail), crosses the wire as its code and status and
// reads back on the client as an *APIError that errors.Is its code's
// sentinel, with the daemon's message.
func TestCodesRoundTrip(t *testing.T) {
	for _, ci := range codes {
		for i, sentinel := range append([]error{ci.Err}, ci.Also...) {
			t.Run(fmt.Sprintf("%s/%d", ci.Code, i), func(t *testing.T) {
				sent := fmt.Errorf("request: %w", sentinel)
				c := serveErrors(t, func() (Code, error) { return CodeOf(sent), sent })
				_, err := c.Status(context.Background())
				var ae *APIError
				if !errors.As(err, &ae) {
					t.Fatalf("got %T %v, want an *APIError", err, err)
				}
				if ae.Code != ci.Code || ae.Status != ci.Status || ae.Message != sent.Error() {
					t.Errorf("got %d %s %q, want %d %s %q", ae.Status, ae.Code, ae.Message, ci.Status, ci.Code, sent.Error())
				}
				if !errors.Is(err, ci.Err) {
					t.Errorf("errors.Is(%v, %v) is false", err, ci.Err)
				}
				for _, other := range codes {
					if other.Code != ci.Code && errors.Is(err, other.Err) {
						t.Errorf("%s answer also errors.Is %s's sentinel", ci.Code, other.Code)
					}
				}
			})
		}
	}
}

// TestCodeTable: codes and sentinels are unique and complete; anything
// the table does not name is internal; a code outside the table is never
// written, and one read from a newer daemon maps to no sentinel.
func TestCodeTable(t *testing.T) {
	seen, errs := map[Code]bool{}, map[error]Code{}
	for _, ci := range codes {
		if seen[ci.Code] || !snakeKey.MatchString(string(ci.Code)) || ci.Status < 400 || ci.Err == nil {
			t.Errorf("bad row %+v", ci)
		}
		seen[ci.Code] = true
		for _, e := range append([]error{ci.Err}, ci.Also...) {
			if c, dup := errs[e]; dup {
				t.Errorf("%v maps to both %s and %s", e, c, ci.Code)
			}
			errs[e] = ci.Code
			if got := CodeOf(e); got != ci.Code {
				t.Errorf("CodeOf(%v) = %s, want %s", e, got, ci.Code)
			}
		}
	}
	if len(Codes()) != len(codes) || codes[len(codes)-1].Code != CodeInternal {
		t.Errorf("Codes() = %v; internal must be last", Codes())
	}
	if got := CodeOf(errors.New("disk on fire")); got != CodeInternal {
		t.Errorf("an unknown error is %s, want internal", got)
	}
	if got := CodeOf(nil); got != CodeInternal {
		t.Errorf("CodeOf(nil) = %s", got)
	}

	rec := httptest.NewRecorder()
	WriteError(rec, Code("made_up"), errors.New("x"))
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != `{"error":"x","code":"internal"}`+"\n" {
		t.Errorf("a code outside the table was written: %d %s", rec.Code, rec.Body)
	}

	c := serveErrors(t, func() (Code, error) { return CodeNotFound, store.ErrNotFound })
	if _, err := c.Accounts(context.Background()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("not_found: %v", err)
	}
	future := apiError(http.StatusTeapot, "418 I'm a teapot", []byte(`{"error":"steam","code":"kettle"}`))
	if future.Code != "kettle" || future.Message != "steam" || future.Unwrap() != nil {
		t.Errorf("unknown code: %+v", future)
	}
	garbled := apiError(http.StatusBadGateway, "502 Bad Gateway", []byte("<html>"))
	if garbled.Message != "daemon answered 502 Bad Gateway" || garbled.Unwrap() != nil {
		t.Errorf("no error body: %+v", garbled)
	}
}

// TestCodeConstants: every Code constant declared in this package is in
// the table, so a handler answering with a constant sends a known code.
func TestCodeConstants(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
					continue
				}
				for i, name := range vs.Names {
					lit := vs.Values[i].(*ast.BasicLit)
					code, _ := strconv.Unquote(lit.Value)
					n++
					if !Code(code).Known() {
						t.Errorf("%s = %s is not in the table", name.Name, lit.Value)
					}
				}
			}
		}
	}
	if n != len(codes) {
		t.Errorf("%d Code constants, %d rows in the table", n, len(codes))
	}
}
