package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/store"
)

// ErrNotOwner means the kernel firewall belongs to another dialgate
// install (another database), or another dialgate process is working on
// it: nothing was touched.
var ErrNotOwner = errors.New("the firewall in the kernel is not this dialgate's")

// LockDir holds one lock file per network namespace: a daemon or a
// restore holds it while it owns that namespace's firewall. Whatever the
// config says, two dialgates on one kernel meet here. DIALGATE_LOCK_DIR
// moves it, so tests leave the machine's /run alone.
var LockDir = cmpOrEnv("DIALGATE_LOCK_DIR", "/run/dialgate")

func cmpOrEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// keyInstallID is the setting naming this database's install: the owner
// mark the kernel carries.
const keyInstallID = "install.id"

// installID returns the database's install ID, creating it the first time
// (databases made before owner marks have none).
func installID(db store.Store) (string, error) {
	var id string
	err := db.Update(func(tx store.Tx) error {
		raw, err := tx.Setting(keyInstallID)
		if err == nil && firewall.ValidOwnerID(string(raw)) {
			id = string(raw)
			return nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		b := make([]byte, 8)
		rand.Read(b)
		id = hex.EncodeToString(b)
		return tx.PutSetting(keyInstallID, []byte(id))
	})
	return id, err
}

// claimKernel makes the caller the one dialgate working on this network
// namespace's firewall, before it touches it: the namespace's lock file,
// then the kernel's owner mark. A kernel marked by another install is
// refused unless force (a deliberate takeover, logged). release gives the
// lock back; the mark stays, as the firewall does.
func claimKernel(ctx context.Context, fw firewall.Backend, db store.Store, force bool, log *slog.Logger) (release func(), err error) {
	unlock, err := lockNamespace()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	id, err := installID(db)
	if err != nil {
		return nil, fmt.Errorf("install id: %w", err)
	}
	m, ok := fw.(firewall.OwnerMarker)
	if !ok {
		return unlock, nil
	}
	owner, err := m.Owner(ctx)
	if err != nil {
		return nil, err
	}
	if owner != "" && owner != id {
		if !force {
			return nil, fmt.Errorf("%w: it belongs to install %s, and %s is install %s. Another dialgate database runs this firewall; "+
				"stop that daemon and use its database, or take the firewall over with this database's whitelist: --force", ErrNotOwner, owner, dbPath(db), id)
		}
		log.Warn("taking over the kernel firewall from another dialgate install (--force)", "was", owner, "now", id, "db", dbPath(db))
	}
	if err := m.SetOwner(ctx, id); err != nil {
		return nil, err
	}
	return unlock, nil
}

func dbPath(db store.Store) string {
	if p, ok := db.(interface{ Path() string }); ok {
		return p.Path()
	}
	return "the database"
}

// lockNamespace takes the lock file of the calling process's network
// namespace, non-blocking: a holder is named in the error.
func lockNamespace() (unlock func(), err error) {
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, errors.New("network namespace: no inode")
	}
	if err := os.MkdirAll(LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("lock directory: %w", err)
	}
	path := filepath.Join(LockDir, fmt.Sprintf("netns-%d.lock", st.Ino))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(holder))
		if _, perr := strconv.Atoi(pid); perr != nil {
			pid = "unknown"
		}
		return nil, fmt.Errorf("%w: another dialgate (pid %s) is working on this machine's firewall (%s); stop it first", ErrNotOwner, pid, path)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
