package daemon

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// serveLocalAPI serves d's LocalAPI handler on a temporary unix socket,
// as Run does, and returns the CLI's client for it. No root needed: the
// handler lets in the daemon's own user.
func serveLocalAPI(t *testing.T, d *Daemon) *localapi.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.Handler(), ConnContext: withPeer}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return localapi.NewClient(sock)
}

// TestLocalAPIClient drives the handler through localapi.Client over a
// socket, on a fresh database and the in-memory kernel: the calls the
// CLI makes, and refusals that come back as their codes, statuses and
// sentinels.
func TestLocalAPIClient(t *testing.T) {
	d, fw := newStoreTest(t, nil)
	ctx := context.Background()
	if err := d.applyStored(ctx, false); err != nil {
		t.Fatal(err)
	}
	c := serveLocalAPI(t, d)

	a, err := c.AddAccount(ctx, localapi.AddAccountRequest{Name: "alice", Perms: "1,8", Comment: "office"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "alice" || a.Perms.String() != "1,8" || a.Comment != "office" || !a.Enabled || a.CallerIDs == nil {
		t.Errorf("AddAccount: %+v", a)
	}
	e, err := c.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: "203.0.113.7", Comment: "hotel"})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID == "" || e.Account != "alice" || e.Value != "203.0.113.7" || !e.Inherited || e.Perms.String() != "1,8" {
		t.Errorf("AddEntry: %+v", e)
	}
	if _, err := c.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindCIDR, Value: "198.51.100.0/24", Perms: "1"}); err != nil {
		t.Fatal(err)
	}
	as, err := c.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Name != "alice" || as[0].Entries != 2 {
		t.Errorf("Accounts: %+v", as)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Daemon || len(st.Entries) != 2 || len(st.Accounts) != 1 || st.Grants == nil {
		t.Errorf("Status: %+v", st)
	}
	if ms := fmt.Sprint(fw.Members(8)); !strings.Contains(ms, "203.0.113.7/32") {
		t.Errorf("the kernel's code 8 set lacks the entry: %s", ms)
	}

	before := fw.State()
	for _, tc := range []struct {
		name   string
		call   func() error
		code   localapi.Code
		status int
		is     error
		msg    string
	}{
		{"account exists", func() error {
			_, err := c.AddAccount(ctx, localapi.AddAccountRequest{Name: "alice", Perms: "1"})
			return err
		}, localapi.CodeExists, http.StatusConflict, store.ErrExists, "alice"},
		{"no such account", func() error {
			_, err := c.DeleteAccount(ctx, "nobody")
			return err
		}, localapi.CodeNotFound, http.StatusNotFound, store.ErrNotFound, "nobody"},
		{"no such entry", func() error {
			comment := "x"
			_, err := c.UpdateEntry(ctx, "e999", localapi.UpdateEntryRequest{Comment: &comment})
			return err
		}, localapi.CodeNotFound, http.StatusNotFound, store.ErrNotFound, "e999"},
		{"bad perms", func() error {
			_, err := c.AddAccount(ctx, localapi.AddAccountRequest{Name: "bob", Perms: "10"})
			return err
		}, localapi.CodeInvalid, http.StatusBadRequest, auth.ErrInvalid, `"10"`},
		{"bad address", func() error {
			_, err := c.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: "not-an-ip"})
			return err
		}, localapi.CodeInvalid, http.StatusBadRequest, auth.ErrInvalid, "not-an-ip"},
		{"wider than the account", func() error {
			_, err := c.AddEntry(ctx, localapi.AddEntryRequest{Account: "alice", Kind: store.KindIP, Value: "192.0.2.9", Perms: "9"})
			return err
		}, localapi.CodeForce, http.StatusBadRequest, auth.ErrNeedsForce, "wider than"},
		{"nothing to confirm", func() error { return c.Confirm(ctx) },
			localapi.CodeNothingToConfirm, http.StatusConflict, localapi.ErrNothingToConfirm, "no reload"},
		{"no AMI", func() error { return c.ReloadDialplan(ctx) },
			localapi.CodeAMIDisabled, http.StatusConflict, localapi.ErrAMIDisabled, "[ami]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *localapi.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %T %v, want an *APIError", err, err)
			}
			if ae.Code != tc.code || ae.Status != tc.status || !errors.Is(err, tc.is) || !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("got %d %s %q (errors.Is %v: %v); want %d %s with %q",
					ae.Status, ae.Code, ae.Message, tc.is, errors.Is(err, tc.is), tc.status, tc.code, tc.msg)
			}
		})
	}
	if after := fw.State(); !reflect.DeepEqual(after, before) {
		t.Error("refused requests changed the kernel")
	}

	r, err := c.DeleteEntry(ctx, e.ID)
	if err != nil || len(r.Entries) != 1 || r.Entries[0].ID != e.ID {
		t.Fatalf("DeleteEntry: %+v %v", r, err)
	}
	r, err = c.DeleteAccount(ctx, "alice")
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("DeleteAccount: %+v %v", r, err)
	}
	if as, err := c.Accounts(ctx); err != nil || len(as) != 0 {
		t.Errorf("Accounts after delete: %+v %v", as, err)
	}
}

// TestHandlerWritesTableCodes: the daemon answers errors only through
// localapi.WriteError, with a code from localapi's table (a constant, or
// what CodeOf found), so it never sends a code the client cannot map.
func TestHandlerWritesTableCodes(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		codeVars := map[string]bool{} // code := localapi.CodeOf(err)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.AssignStmt:
				if len(n.Lhs) == 1 && len(n.Rhs) == 1 && isSel(n.Rhs[0], "CodeOf") {
					codeVars[n.Lhs[0].(*ast.Ident).Name] = true
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && (x.Name == "http" && n.Sel.Name == "Error" || x.Name == "localapi" && n.Sel.Name == "ErrorBody") {
					t.Errorf("%s: %s.%s: answer errors with localapi.WriteError", fset.Position(n.Pos()), x.Name, n.Sel.Name)
				}
			case *ast.CallExpr:
				if !isSel(n.Fun, "WriteError") {
					return true
				}
				calls++
				code := n.Args[1]
				if id, ok := code.(*ast.Ident); ok && codeVars[id.Name] {
					return true
				}
				// A localapi.Code constant: localapi's TestCodeConstants
				// checks every one is in the table.
				if sel, ok := code.(*ast.SelectorExpr); ok && isSel(sel, sel.Sel.Name) && strings.HasPrefix(sel.Sel.Name, "Code") {
					return true
				}
				t.Errorf("%s: WriteError with a code that is neither a localapi constant nor CodeOf's", fset.Position(n.Pos()))
			}
			return true
		})
	}
	if calls == 0 {
		t.Fatal("found no localapi.WriteError call")
	}
}

// isSel reports whether e is localapi.name.
func isSel(e ast.Expr, name string) bool {
	if c, ok := e.(*ast.CallExpr); ok {
		e = c.Fun
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "localapi" && sel.Sel.Name == name
}
