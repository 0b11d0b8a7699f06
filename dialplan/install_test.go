package dialplan

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 14, 50, 0, 0, time.UTC)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// names lists dir, so tests see every file Install left behind.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestInstallCreatesMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "extensions_custom.conf")
	changed, backup, err := Install(path, blk, "", t0)
	if err != nil || !changed || backup != "" {
		t.Fatalf("Install = %v, %q, %v; want true, \"\", nil", changed, backup, err)
	}
	want, _, _ := Splice("", blk)
	if got := readFile(t, path); got != want {
		t.Errorf("file = %q, want %q", got, want)
	}
	if m := mode(t, path); m != 0o644 {
		t.Errorf("mode = %v, want 0644 whatever the umask", m)
	}
	if n := names(t, dir); !slices.Equal(n, []string{"extensions_custom.conf"}) {
		t.Errorf("directory holds %v, want the file only", n)
	}
}

func TestInstallNewFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "manager_custom.conf")
	if _, _, err := InstallFile(path, blk, InstallOptions{NewFileMode: 0o640, Now: t0}); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o640 {
		t.Errorf("mode = %v, want 0640", m)
	}
}

func TestInstallExistingTwice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "extensions_custom.conf")
	orig := "; the admin's file\r\n[from-internal-custom]\r\nexten => 100,1,NoOp()\r\n"
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	changed, backup, err := Install(path, blk, ".bak", t0)
	if err != nil || !changed {
		t.Fatalf("first Install = %v, %q, %v", changed, backup, err)
	}
	if want := path + ".dialgate-20261129T145000Z.bak"; backup != want {
		t.Errorf("backup = %q, want %q", backup, want)
	}
	if got := readFile(t, backup); got != orig {
		t.Errorf("backup = %q, want the original %q", got, orig)
	}
	if m := mode(t, backup); m != 0o640 {
		t.Errorf("backup mode = %v, want the original 0640", m)
	}
	if m := mode(t, path); m != 0o640 {
		t.Errorf("mode = %v, want 0640 kept", m)
	}
	first := readFile(t, path)
	if !strings.HasPrefix(first, orig) || !strings.Contains(first, "\r\n; BEGIN dialgate\r\n[dialgate-authorize]\r\n") {
		t.Errorf("installed file = %q", first)
	}

	changed, backup, err = Install(path, blk, ".bak", t0.Add(time.Hour))
	if err != nil || changed || backup != "" {
		t.Fatalf("second Install = %v, %q, %v; want false, \"\", nil", changed, backup, err)
	}
	if got := readFile(t, path); got != first {
		t.Errorf("second Install changed the file to %q", got)
	}
	want := []string{"extensions_custom.conf", "extensions_custom.conf.dialgate-20261129T145000Z.bak"}
	if n := names(t, dir); !slices.Equal(n, want) {
		t.Errorf("directory holds %v, want %v (one backup, no temporary files)", n, want)
	}
}

func TestInstallNewBlockSameSecond(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.conf")
	if err := os.WriteFile(path, []byte("; x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Install(path, blk, "", t0); err != nil {
		t.Fatal(err)
	}
	prev := readFile(t, path)
	changed, backup, err := Install(path, "exten => s,1,NoOp()\n", "", t0)
	if err != nil || !changed {
		t.Fatalf("Install = %v, %q, %v", changed, backup, err)
	}
	if want := path + ".dialgate-20261129T145000Z-2.bak"; backup != want {
		t.Errorf("backup = %q, want %q (the first backup kept)", backup, want)
	}
	if got := readFile(t, backup); got != prev {
		t.Errorf("second backup = %q, want %q", got, prev)
	}
	if got := readFile(t, path); !strings.Contains(got, "; BEGIN dialgate\nexten => s,1,NoOp()\n; END dialgate\n") {
		t.Errorf("file = %q", got)
	}
}

func TestInstallFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.conf")
	link := filepath.Join(dir, "extensions_custom.conf")
	if err := os.WriteFile(target, []byte("; real\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.conf", link); err != nil {
		t.Fatal(err)
	}
	_, backup, err := Install(link, blk, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if mode(t, link)&fs.ModeSymlink == 0 {
		t.Error("the link was replaced by a file")
	}
	if !strings.Contains(readFile(t, target), "; BEGIN dialgate") {
		t.Error("the link's target was not edited")
	}
	if !strings.HasPrefix(backup, target+".dialgate-") {
		t.Errorf("backup %q is not next to the target", backup)
	}
}

func TestInstallRefusals(t *testing.T) {
	dir := t.TempDir()
	damaged := filepath.Join(dir, "damaged.conf")
	const damagedText = "; BEGIN dialgate\nhand edit\n"
	if err := os.WriteFile(damaged, []byte(damagedText), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Install(damaged, blk, "", t0)
	if !errors.Is(err, ErrMarkers) || !strings.Contains(err.Error(), damaged) {
		t.Errorf("damaged markers: err = %v, want ErrMarkers naming the file", err)
	}
	if got := readFile(t, damaged); got != damagedText {
		t.Errorf("damaged file was changed to %q", got)
	}

	if _, _, err := Install(dir, blk, "", t0); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
	dangling := filepath.Join(dir, "dangling.conf")
	if err := os.Symlink("nowhere.conf", dangling); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Install(dangling, blk, "", t0); err == nil {
		t.Error("dangling symbolic link: no error")
	}
	for _, suffix := range []string{".conf", ".bak.CONF", "/x", "a b", strings.Repeat("a", 33)} {
		if _, _, err := Install(filepath.Join(dir, "new.conf"), blk, suffix, t0); !errors.Is(err, ErrOption) {
			t.Errorf("backup suffix %q: err = %v, want ErrOption", suffix, err)
		}
	}
	if _, _, err := Install(filepath.Join(dir, "nodir", "x.conf"), blk, "", t0); err == nil || !strings.Contains(err.Error(), "nodir") {
		t.Errorf("missing directory: err = %v", err)
	}
	want := []string{"damaged.conf", "dangling.conf"}
	if n := names(t, dir); !slices.Equal(n, want) {
		t.Errorf("directory holds %v after refusals, want %v", n, want)
	}
}

// unchangedSince is what keeps an admin's concurrent edit.
func TestUnchangedSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.conf")
	if err := unchangedSince(path, nil); err != nil {
		t.Errorf("still missing: %v", err)
	}
	if err := os.WriteFile(path, []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unchangedSince(path, nil); err == nil {
		t.Error("created meanwhile: no error")
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unchangedSince(path, before); err != nil {
		t.Errorf("untouched: %v", err)
	}
	if err := os.WriteFile(path, []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unchangedSince(path, before); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("edited meanwhile: err = %v", err)
	}
}

func TestInstallKeepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file another owner")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "extensions_custom.conf")
	if err := os.WriteFile(path, []byte("; x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 4321, 8765); err != nil {
		t.Fatal(err)
	}
	_, backup, err := Install(path, blk, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, backup} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		uid, gid, ok := fileOwner(fi)
		if !ok || uid != 4321 || gid != 8765 {
			t.Errorf("%s: owner %d:%d, want 4321:8765", p, uid, gid)
		}
		if fi.Mode() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", p, fi.Mode())
		}
	}
}
