package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/dialgate/dialgate/daemon"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/sshpeer"
)

func newInitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Prepare a fresh install: config, database, and whitelist this server and your SSH address",
		Long: `init writes a default config if there is none, creates the database, and
whitelists (code 0) localhost, this server's own addresses and the SSH
client you run it from, so that starting the daemon cannot lock you out.
Run again, it keeps what exists.

With [store] backend = "etcd" the database is the one shared on etcd: init
creates an empty one there if etcd holds none, and otherwise joins it,
adding this PBX's addresses and your SSH client to the shared whitelist.`,
		Example: `  dialgate init
  dialgate --config /tmp/lab/dialgate.toml init`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			addrs, err := daemon.LocalAddrs()
			if err != nil {
				return err
			}
			ssh := sshpeer.Find() // through sudo and su too
			if ssh.Lost() {
				cmd.PrintErrf("warning: %s; no admin address can be whitelisted, so `dialgate serve` may lock this session out (sudo --preserve-env=SSH_CONNECTION dialgate init finds it)\n", ssh.Warning())
			}
			err = daemon.Init(daemon.InitOptions{
				ConfigPath: g.configPath,
				Addrs:      addrs,
				SSH:        ssh.Addr.Addr(),
				Out:        cmd.OutOrStdout(),
			})
			if err == nil {
				cmd.Println("next: dialgate serve   (or: systemctl start dialgate)")
			}
			return err
		},
	}
}

func newServeCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: apply the firewall and serve the LocalAPI",
		Long: `serve applies the stored whitelist to the kernel and answers the other
dialgate commands on the LocalAPI socket. SIGHUP reloads the config and
rebuilds the firewall; SIGTERM stops the daemon and leaves the firewall in
place, so the server stays protected.`,
		Example: `  dialgate serve
  dialgate --config /tmp/lab/dialgate.toml serve
  systemctl start dialgate`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// Each passcode check allocates hash_memory_kib that is
				// garbage right after; a soft limit makes the collector
				// return it promptly instead of letting a crowd of callers
				// balloon the daemon on a small PBX.
				debug.SetMemoryLimit(daemonMemoryLimit)
			}
			var level slog.Level
			level.UnmarshalText([]byte(cfg.LogLevel))
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			fw, err := firewall.New(cfg.Firewall.Backend, log)
			if err != nil {
				return err
			}
			defer fw.Close()
			path := ""
			if _, err := os.Stat(g.configPath); err == nil {
				path = g.configPath
			}
			d, err := daemon.New(daemon.Options{Config: cfg, ConfigPath: path, Backend: fw, Logger: log, TakeOver: force})
			if err != nil {
				return err
			}
			defer d.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						if err := d.Reload(ctx, daemon.Guard{}); err != nil {
							log.Error("reload on SIGHUP", "err", err)
						}
					}
				}
			}()
			return d.Run(ctx)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "take over a kernel firewall that another dialgate database owns")
	return cmd
}

// daemonMemoryLimit is the Go runtime's soft memory limit for serve.
const daemonMemoryLimit = 48 << 20

func newRestoreCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Apply the stored whitelist to the kernel once and exit (boot, before the network)",
		Long: `restore puts the firewall the database describes into the kernel and exits,
without serving. The dialgate-restore unit runs it at boot before the
network comes up, so the server is filtered from its first packet even if
the daemon then fails to start. With the daemon running it does nothing.`,
		Example: "  dialgate restore",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if c, err := g.client(false); err == nil {
				if _, err := c.Status(cmd.Context()); err == nil {
					cmd.Println("the daemon is running and keeps the firewall; nothing to restore")
					return nil
				}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			fw, err := firewall.New(cfg.Firewall.Backend, log)
			if err != nil {
				return err
			}
			defer fw.Close()
			return daemon.Restore(cmd.Context(), cfg, fw, log, force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace a kernel firewall that another dialgate database owns")
	return cmd
}

func newRemoveCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Take every dialgate chain, jump and set out of the kernel (stop the daemon first)",
		Long: `remove uninstalls the firewall from the kernel: the jump from INPUT,
the DIALGATE chains (iptables and ip6tables) and the dialgate-* sets. The
database is kept, so "dialgate serve" puts everything back.`,
		Example: `  systemctl stop dialgate && dialgate remove --yes`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return usageError{errFlag("remove opens the server to everyone; confirm with --yes")}
			}
			if c, err := g.client(false); err == nil {
				if _, err := c.Status(cmd.Context()); err == nil {
					return errFlag("the daemon is running; stop it first (systemctl stop dialgate), or it will not know the firewall is gone")
				}
			}
			// Both backends: whichever loaded a firewall, none may be left.
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			removed := 0
			for _, kind := range []string{firewall.KindIPTables, firewall.KindNFTables} {
				fw, err := firewall.New(kind, quiet)
				if err != nil {
					cmd.PrintErrf("%s backend unavailable (%v); nothing of it to remove\n", kind, err)
					continue
				}
				err = fw.Remove(context.Background())
				if m, ok := fw.(firewall.OwnerMarker); ok && err == nil {
					err = m.ClearOwner(context.Background())
				}
				fw.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", kind, err)
				}
				removed++
			}
			if removed == 0 {
				return errFlag("no firewall backend could be opened")
			}
			cmd.Println("dialgate firewall removed; the server is no longer filtered by dialgate")
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "really remove the firewall")
	return cmd
}

type errFlag string

func (e errFlag) Error() string { return string(e) }
