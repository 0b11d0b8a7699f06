package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
)

// Protection judges a firewall read back from the kernel: protected when
// every family has dialgate's chain in force (jumped to before anything
// that could admit a packet) and every set exists. reasons says why not;
// notes are what else an administrator should know (neighbours such as
// fail2ban or the FreePBX Firewall).
func Protection(fw firewall.Status) (protected bool, reasons []string) {
	if len(fw.Families) == 0 {
		return false, []string{"no dialgate firewall in the kernel (dialgate serve or dialgate restore puts it there)"}
	}
	for _, f := range fw.Families {
		switch {
		case !f.ChainLoaded:
			reasons = append(reasons, fmt.Sprintf("%s: dialgate's chain is not loaded", f.Family))
		case !f.JumpFirst:
			reasons = append(reasons, fmt.Sprintf("%s: a rule that can admit packets runs before dialgate's chain", f.Family))
		}
	}
	for _, s := range fw.Sets {
		if !s.Exists {
			reasons = append(reasons, fmt.Sprintf("set %s is missing", s.Name))
		}
	}
	return len(reasons) == 0, reasons
}

// fillStatus adds what only the running daemon knows.
func (d *Daemon) fillStatus(st *localapi.StatusInfo) {
	st.Protected, st.Reasons = Protection(st.Firewall)
	st.Daemon = true
	st.ConfigPath = d.configPath
	st.Backend = d.config().Firewall.Backend
	d.mu.Lock()
	if p := d.pending; p != nil {
		st.PendingReload = &localapi.PendingReload{Deadline: p.deadline, Left: p.deadline.Sub(d.now()).Round(time.Second).Seconds()}
	}
	d.mu.Unlock()
	d.svc.mu.Lock()
	st.Services = localapi.ServiceInfo{AGIListen: d.svc.agi.Listen, AGIServing: d.svc.agiSrv != nil, AMIEnabled: d.svc.ami.Enabled}
	d.svc.mu.Unlock()
	st.Services.AMILogin = d.amiUp.Load()
}

// Status reads the kernel and the store.
func (d *Daemon) Status(ctx context.Context) (localapi.StatusInfo, error) {
	fw, err := d.fw.Status(ctx)
	if err != nil {
		return localapi.StatusInfo{}, err
	}
	st := localapi.StatusInfo{Firewall: fw, DB: d.db.Path(), Time: d.now(), Warnings: d.config().Warnings}
	d.fillStatus(&st)
	st.Store = d.storeInfo()
	st.Drops = d.dropSummary(ctx)
	return st, d.fillListing(&st)
}
