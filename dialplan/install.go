package dialplan

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxConfigSize bounds what Install reads: Asterisk config files are a
// few kilobytes, and a huge file at that path is not one.
const maxConfigSize = 8 << 20

// DefaultNewFileMode is the mode of a config file Install creates: Asterisk
// (often running as its own user) must be able to read it.
const DefaultNewFileMode fs.FileMode = 0o644

// InstallOptions tunes InstallFile.
type InstallOptions struct {
	// BackupSuffix ends the backup's name; ".bak" when empty. It must not
	// end in ".conf": Asterisk configs include globs such as
	// "manager.d/*.conf", which would load the backup as live config.
	BackupSuffix string

	// Now names the backup; time.Now() when zero.
	Now time.Time

	// NewFileMode is the permission of a file InstallFile creates;
	// DefaultNewFileMode when zero. Use 0o640 (and chgrp asterisk) for a
	// manager config: it holds the AMI secret.
	NewFileMode fs.FileMode
}

// Install is InstallFile with only the backup suffix and clock set.
func Install(path, block, backupSuffix string, now time.Time) (changed bool, backup string, err error) {
	return InstallFile(path, block, InstallOptions{BackupSuffix: backupSuffix, Now: now})
}

// InstallFile splices block into the config file at path (see Splice) and
// writes the result, so that dialgate's block is there exactly once:
//
//   - a missing file is created (o.NewFileMode, no backup);
//   - an unchanged file is not touched: no write, no backup;
//   - otherwise the old content is first copied to a backup next to the
//     file, path + ".dialgate-" + UTC timestamp + suffix, with the file's
//     mode and owner (it may hold secrets), and then the new content
//     replaces the file atomically: a temporary file in the same
//     directory, fsynced, given the original mode and uid/gid, renamed
//     over the file, and the directory fsynced. Asterisk reading the file
//     at any moment sees the old or the new text, never half of one.
//
// A symbolic link is followed and its target edited, so the link stays a
// link. If the file changes between the read and the rename (an admin
// saving it in an editor), nothing is replaced and the error says so.
//
// backup is the backup's path, "" when none was written. Errors name the
// file.
func InstallFile(path, block string, o InstallOptions) (changed bool, backup string, err error) {
	suffix := o.BackupSuffix
	if suffix == "" {
		suffix = ".bak"
	}
	if err := validateBackupSuffix(suffix); err != nil {
		return false, "", err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	mode := o.NewFileMode
	if mode == 0 {
		mode = DefaultNewFileMode
	}

	target, before, existing, err := readConfig(path)
	if err != nil {
		return false, "", err
	}
	result, changed, err := Splice(existing, block)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", target, err)
	}
	if !changed {
		return false, "", nil
	}

	if before != nil {
		mode = before.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		backup, err = writeBackup(target, existing, before, suffix, now)
		if err != nil {
			return false, "", err
		}
	}
	if replaced, err := replaceFile(target, result, mode, before); err != nil {
		if replaced {
			return true, backup, err
		}
		if backup != "" {
			// Nothing was replaced: a backup of an untouched file
			// would only be litter.
			_ = os.Remove(backup)
		}
		return false, "", err
	}
	return true, backup, nil
}

func validateBackupSuffix(s string) error {
	if len(s) > 32 {
		return fmt.Errorf("%w: backup suffix %q: longer than 32 characters", ErrOption, s)
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: backup suffix %q: character %q not allowed (want A-Z a-z 0-9 . _ -)", ErrOption, s, r)
		}
	}
	if strings.HasSuffix(strings.ToLower(s), ".conf") {
		return fmt.Errorf("%w: backup suffix %q: a backup ending in .conf would be loaded by Asterisk's *.conf includes", ErrOption, s)
	}
	return nil
}

// readConfig resolves path and reads it. before is nil when the file
// does not exist yet.
func readConfig(path string) (target string, before fs.FileInfo, content string, err error) {
	target = path
	li, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return target, nil, "", nil
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		// A dangling link fails here on purpose: creating its target
		// somewhere unexpected is worse than asking the admin.
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return "", nil, "", fmt.Errorf("%s: follow symbolic link: %w", path, err)
		}
	}
	f, err := os.Open(target)
	if err != nil {
		return "", nil, "", fmt.Errorf("%s: %w", target, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, "", fmt.Errorf("%s: %w", target, err)
	}
	if !fi.Mode().IsRegular() {
		return "", nil, "", fmt.Errorf("%s: not a regular file (%s)", target, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return "", nil, "", fmt.Errorf("%s: %w", target, err)
	}
	if len(data) > maxConfigSize {
		return "", nil, "", fmt.Errorf("%s: larger than %d bytes; not an Asterisk config file", target, maxConfigSize)
	}
	return target, fi, string(data), nil
}

// writeBackup copies content, the file's old text, to a new file next to
// target with target's mode and owner. An existing file of that name is
// never overwritten: a second install within the same second gets "-2".
func writeBackup(target, content string, before fs.FileInfo, suffix string, now time.Time) (string, error) {
	base := target + ".dialgate-" + now.UTC().Format("20060102T150405Z")
	for n := 1; n <= 100; n++ {
		name := base + suffix
		if n > 1 {
			name = fmt.Sprintf("%s-%d%s", base, n, suffix)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("%s: backup: %w", target, err)
		}
		if err := fillFile(f, content, before.Mode(), before); err != nil {
			_ = os.Remove(name)
			return "", fmt.Errorf("%s: backup %s: %w", target, name, err)
		}
		return name, nil
	}
	return "", fmt.Errorf("%s: backup: 100 backups named %s* exist already", target, base)
}

// fillFile writes content to f, gives it mode and (when owner is not
// nil) owner's uid/gid, syncs and closes it. f is closed in every case.
func fillFile(f *os.File, content string, mode fs.FileMode, owner fs.FileInfo) error {
	err := func() error {
		if _, err := io.WriteString(f, content); err != nil {
			return err
		}
		// Explicitly, because the umask shaped the creation mode.
		if err := f.Chmod(mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
			return err
		}
		if owner != nil {
			if err := copyOwner(f, owner); err != nil {
				return err
			}
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyOwner gives f the uid/gid of owner. It changes nothing when they
// already match, so an unprivileged run on its own file works; when they
// differ and the process may not chown, that is an error, because a file
// that changed owner could become unreadable to Asterisk.
func copyOwner(f *os.File, owner fs.FileInfo) error {
	uid, gid, ok := fileOwner(owner)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if cuid, cgid, ok := fileOwner(fi); ok && cuid == uid && cgid == gid {
		return nil
	}
	if err := f.Chown(uid, gid); err != nil {
		return fmt.Errorf("keep owner %d:%d: %w", uid, gid, err)
	}
	return nil
}

// replaceFile atomically replaces target with content. before is what
// target was when read (nil: it did not exist); if that is no longer
// true, target is left alone. replaced reports whether the rename
// happened (an error after it is about durability only).
func replaceFile(target, content string, mode fs.FileMode, before fs.FileInfo) (replaced bool, err error) {
	dir := filepath.Dir(target)
	// Hidden and ending in .tmp: no "*.conf" include can pick it up
	// half-written.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".dialgate-*.tmp")
	if err != nil {
		return false, fmt.Errorf("%s: %w", target, err)
	}
	tmpName := tmp.Name()
	if err := fillFile(tmp, content, mode, before); err != nil {
		_ = os.Remove(tmpName)
		return false, fmt.Errorf("%s: write %s: %w", target, tmpName, err)
	}
	if err := unchangedSince(target, before); err != nil {
		_ = os.Remove(tmpName)
		return false, err
	}
	if err := os.Rename(tmpName, target); err != nil {
		_ = os.Remove(tmpName)
		return false, fmt.Errorf("%s: %w", target, err)
	}
	// The rename is durable only once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return true, fmt.Errorf("%s: sync directory %s: %w", target, dir, err)
	}
	err = d.Sync()
	_ = d.Close()
	if err != nil {
		return true, fmt.Errorf("%s: sync directory %s: %w", target, dir, err)
	}
	return true, nil
}

// unchangedSince reports an error when target is no longer the file that
// was read: someone else wrote it meanwhile, and replacing it would lose
// their edit.
func unchangedSince(target string, before fs.FileInfo) error {
	now, err := os.Stat(target)
	if before == nil {
		if err == nil {
			return fmt.Errorf("%s: created by someone else while installing; run the install again", target)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", target, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if !os.SameFile(before, now) || now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime()) {
		return fmt.Errorf("%s: changed by someone else while installing; nothing replaced, run the install again", target)
	}
	return nil
}
