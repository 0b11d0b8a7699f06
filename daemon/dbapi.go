package daemon

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dialgate/dialgate/localapi"
	"github.com/dialgate/dialgate/store"
)

// The database's LocalAPI: `dialgate db backup` and `dialgate db check`
// while the daemon holds the database.

// dbRoutes adds the database routes to the LocalAPI.
func (d *Daemon) dbRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/db/backup", d.serveBackup)
	mux.HandleFunc("POST /v1/db/check", d.handle(func(*http.Request) (any, error) { return d.CheckDB() }))
}

// CheckDB checks a copy of the database (store.DB.CheckCopy): bbolt's
// consistency check, every record, the door index.
func (d *Daemon) CheckDB() (store.CheckReport, error) {
	rep, err := d.db.CheckCopy()
	if err != nil {
		return rep, err
	}
	d.log.Info("database checked", "db", rep.Path, "bytes", rep.Bytes, "accounts", rep.Accounts, "audit", rep.Audit)
	return rep, nil
}

// snapshot copies the database, in one read transaction, into a
// temporary file next to it, unlinked at once so nothing is left behind,
// and returns it at its start. The read transaction lasts as long as a
// local copy takes, never as long as a slow client takes to read (a long
// one would hold up a writer that must grow the file).
func (d *Daemon) snapshot() (*os.File, int64, error) {
	f, err := os.CreateTemp(filepath.Dir(d.db.Path()), ".dialgate-backup-*")
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	os.Remove(f.Name())
	n, err := d.db.Backup(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, n, nil
}

func (d *Daemon) serveBackup(w http.ResponseWriter, r *http.Request) {
	f, n, err := d.snapshot()
	if err != nil {
		d.log.Error("localapi", "path", r.URL.Path, "err", err)
		localapi.WriteError(w, localapi.CodeInternal, err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	if _, err := io.Copy(w, f); err != nil {
		d.log.Warn("database backup not delivered", "err", err)
		return
	}
	d.log.Info("database backup sent", "db", d.db.Path(), "bytes", n)
}
