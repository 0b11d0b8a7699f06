package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitLabConfig: `dialgate --config /some/lab/dialgate.toml init`
// writes the config there and keeps the database and socket beside it,
// not in /var/lib/dialgate and /run/dialgate; serve and the other
// commands find them through the same file.
func TestInitLabConfig(t *testing.T) {
	e := newE2E(t)
	lab := filepath.Join(e.dir, "lab")
	e.cfg = filepath.Join(lab, "dialgate.toml") // does not exist yet
	out := e.ok("init")
	if !strings.Contains(out, "wrote default config "+e.cfg) {
		t.Errorf("init output:\n%s", out)
	}
	conf, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, sock := filepath.Join(lab, "dialgate.db"), filepath.Join(lab, "dialgate.sock")
	for _, want := range []string{`db = "` + db + `"`, `socket = "` + sock + `"`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("config lacks %s:\n%s", want, conf)
		}
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("database not beside the config: %v", err)
	}
	e.startServe()
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket not beside the config: %v", err)
	}
	if st := e.status(); st.DB != db || !st.Daemon {
		t.Errorf("status: db %s, daemon %v; want %s", st.DB, st.Daemon, db)
	}
}
