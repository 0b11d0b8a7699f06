package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/dialgate/dialgate/store"
)

// Accounts `dialgate init` creates.
const (
	ServerAccount = "server"
	AdminAccount  = "admin"
)

// InitOptions are the facts `dialgate init` works from; the CLI gathers
// them so Init itself stays testable.
type InitOptions struct {
	ConfigPath string
	// Addrs are this server's own addresses (see LocalAddrs).
	Addrs []netip.Addr
	// SSH is the administrator's current SSH client, if any.
	SSH netip.Addr
	Out io.Writer
}

// Init prepares a fresh install: a default config file if there is none,
// the database, and whitelist entries with code 0 for localhost, the
// server's own addresses and the administrator's SSH client, so that
// starting the daemon cannot lock the administrator out. It is safe to
// run again: what exists is kept. It cannot run while the daemon holds
// the database.
func Init(opts InitOptions) error {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	cfg := DefaultConfigAt(opts.ConfigPath)
	switch _, err := os.Stat(opts.ConfigPath); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(opts.ConfigPath), 0o755); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		// 0600: later versions keep the AMI secret here.
		if err := os.WriteFile(opts.ConfigPath, []byte(DefaultConfigText(cfg)), 0o600); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		fmt.Fprintf(out, "wrote default config %s\n", opts.ConfigPath)
	case err != nil:
		return fmt.Errorf("init: %w", err)
	default:
		fmt.Fprintf(out, "kept existing config %s\n", opts.ConfigPath)
	}
	cfg, err := LoadConfig(opts.ConfigPath, true)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
	db, where, err := openInitStore(context.Background(), cfg, out)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("init: %w; init prepares a fresh install, with the daemon running use `dialgate allow` instead", err)
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer db.Close()
	fmt.Fprintf(out, "database %s\n", where)

	type want struct {
		account, comment string
		addrs            []netip.Addr
	}
	local := append([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, opts.Addrs...)
	wants := []want{{ServerAccount, "this server's own addresses", local}}
	if opts.SSH.IsValid() {
		wants = append(wants, want{AdminAccount, "administrator (SSH client at init)", []netip.Addr{opts.SSH.Unmap()}})
	} else {
		fmt.Fprintln(out, "no SSH session found: no admin address whitelisted")
	}
	return db.Update(func(tx store.Tx) error {
		for _, w := range wants {
			err := tx.CreateAccount(store.Account{Name: w.account, Perms: store.NewPermSet(0), Comment: w.comment, Enabled: true, Created: time.Now()})
			switch {
			case err == nil:
				fmt.Fprintf(out, "account %s: created, perms 0 (all services)\n", w.account)
			case errors.Is(err, store.ErrExists):
				fmt.Fprintf(out, "account %s: exists, kept\n", w.account)
			default:
				return err
			}
			for _, a := range w.addrs {
				e, err := tx.AddEntry(store.Entry{Account: w.account, Kind: store.KindIP, Value: a.String(), Comment: "added by dialgate init"})
				switch {
				case err == nil:
					fmt.Fprintf(out, "  whitelisted %-39s %s\n", a, e.ID)
				case errors.Is(err, store.ErrExists):
					fmt.Fprintf(out, "  whitelisted %-39s (already)\n", a)
					continue
				default:
					return err
				}
				if err := tx.Audit(store.AuditRecord{Action: "entry.add", Actor: "init", Account: w.account, Subject: a.String(), Result: "ok", Detail: e.ID}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// LocalAddrs returns the unicast addresses of this machine's interfaces,
// link-local ones excluded (they cannot be a packet's source across a
// router, and they carry zones).
func LocalAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ia := range ifaddrs {
		p, err := netip.ParsePrefix(ia.String())
		if err != nil {
			continue
		}
		a := p.Addr().Unmap()
		if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}
