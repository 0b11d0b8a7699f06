package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

// TestConfigPaths: the installed config keeps the system paths; a config
// file anywhere else keeps the database and socket beside itself unless
// it names them.
func TestConfigPaths(t *testing.T) {
	dir := t.TempDir()
	lab := filepath.Join(dir, "lab")
	if err := os.MkdirAll(lab, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) string {
		p := filepath.Join(lab, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name             string
		path             string
		explicit         bool
		wantDB, wantSock string
	}{
		{"installed default, missing", DefaultConfigPath, false, DefaultDBPath, DefaultSocketPath},
		{"lab file without paths", write("empty.toml", "log_level = \"info\"\n"), true,
			filepath.Join(lab, "dialgate.db"), filepath.Join(lab, "dialgate.sock")},
		{"lab file naming the db", write("db.toml", "db = \"/srv/x/dialgate.db\"\n"), true,
			"/srv/x/dialgate.db", filepath.Join(lab, "dialgate.sock")},
		{"lab file naming both", write("both.toml", "db = \"/srv/x/a.db\"\nsocket = \"/srv/x/a.sock\"\n"), true,
			"/srv/x/a.db", "/srv/x/a.sock"},
		{"lab file written by init", write("init.toml", DefaultConfigText(DefaultConfigAt(filepath.Join(lab, "init.toml")))), true,
			filepath.Join(lab, "dialgate.db"), filepath.Join(lab, "dialgate.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(tc.path, tc.explicit)
			if err != nil {
				t.Fatal(err)
			}
			if c.DB != tc.wantDB || c.Socket != tc.wantSock {
				t.Errorf("db %s, socket %s; want %s, %s", c.DB, c.Socket, tc.wantDB, tc.wantSock)
			}
		})
	}
	// A relative path is read from the working directory; the paths
	// beside it are absolute, as db and socket must be.
	t.Chdir(lab)
	c, err := LoadConfig("empty.toml", true)
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != filepath.Join(lab, "dialgate.db") || c.Socket != filepath.Join(lab, "dialgate.sock") {
		t.Errorf("relative config: db %s, socket %s", c.DB, c.Socket)
	}
	if d := DefaultConfigAt(DefaultConfigPath); d.DB != DefaultDBPath || d.Socket != DefaultSocketPath {
		t.Errorf("installed config: db %s, socket %s", d.DB, d.Socket)
	}
}
