package firewall

import (
	"fmt"
	"log/slog"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// Backend kinds, as the configuration names them.
const (
	KindAuto     = "auto"
	KindIPTables = "iptables"
	KindNFTables = "nftables"
)

// New returns the backend of the given kind for the network namespace of
// the calling thread:
//
//   - "iptables": IPTables (iptables/ip6tables and ipset);
//   - "nftables": NFTables (one nftables table over netlink);
//   - "auto" or "": the backend whose firewall is already loaded, if any,
//     else nftables when the kernel accepts dialgate's table (NewNFTables
//     tries it in a transaction that leaves nothing behind), else
//     iptables.
//
// auto sticks to a loaded firewall because switching backends under a
// running server would leave two firewalls filtering side by side: the
// old one, no longer maintained, would go on dropping what the new one
// admits. To move from one backend to the other, remove the firewall
// with the old backend first; New warns when it finds the other
// backend's firewall loaded.
func New(kind string, log *slog.Logger) (Backend, error) {
	if log == nil {
		log = slog.Default()
	}
	switch kind {
	case KindIPTables:
		warnOther(log, kind, nftablesLoaded())
		return NewIPTables(log)
	case KindNFTables:
		warnOther(log, kind, iptablesLoaded())
		return NewNFTables(log, NFTablesOptions{})
	case KindAuto, "":
		if iptablesLoaded() {
			log.Info("firewall backend: iptables, whose firewall is loaded")
			return NewIPTables(log)
		}
		b, err := NewNFTables(log, NFTablesOptions{})
		if err == nil {
			log.Info("firewall backend: nftables")
			return b, nil
		}
		log.Info("firewall backend: iptables, as nftables is unavailable", "err", err)
		return NewIPTables(log)
	}
	return nil, fmt.Errorf("firewall: backend %q: want %s, %s or %s", kind, KindAuto, KindIPTables, KindNFTables)
}

func warnOther(log *slog.Logger, kind string, otherLoaded bool) {
	if otherLoaded {
		log.Warn("firewall: the other backend's firewall is loaded too and keeps filtering; remove it with that backend",
			"backend", kind)
	}
}

// iptablesLoaded reports whether the iptables backend's sets exist: it
// creates them with the chain and destroys them last in Remove. Asking
// netlink keeps this free of the iptables binaries; an error (no ipset
// support at all) means no.
func iptablesLoaded() bool {
	_, err := netlink.IpsetList(SetName(CodeAll, V4))
	return err == nil
}

// nftablesLoaded reports whether table inet dialgate exists.
func nftablesLoaded() bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	t, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false
	}
	for _, t := range t {
		if t.Name == NFTTable {
			return true
		}
	}
	return false
}
