package daemon

import (
	"fmt"
	"time"

	"github.com/dialgate/dialgate/firewall"
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

// PendingReload is a `reload --confirm` waiting for `dialgate confirm`.
type PendingReload struct {
	Deadline time.Time `json:"deadline"`
	Left     float64   `json:"left_seconds"`
}

// ServiceInfo is the state of the FastAGI door and the AMI login.
type ServiceInfo struct {
	AGIListen  string `json:"agi_listen"` // "" when the door is off
	AGIServing bool   `json:"agi_serving"`
	AMIEnabled bool   `json:"ami_enabled"`
	AMILogin   bool   `json:"ami_logged_in"`
}

// fillStatus adds what only the running daemon knows.
func (d *Daemon) fillStatus(st *StatusInfo) {
	st.Protected, st.Reasons = Protection(st.Firewall)
	st.Daemon = true
	st.ConfigPath = d.configPath
	st.Backend = d.config().Firewall.Backend
	d.mu.Lock()
	if p := d.pending; p != nil {
		st.PendingReload = &PendingReload{Deadline: p.deadline, Left: p.deadline.Sub(d.now()).Round(time.Second).Seconds()}
	}
	d.mu.Unlock()
	d.svc.mu.Lock()
	st.Services = ServiceInfo{AGIListen: d.svc.agi.Listen, AGIServing: d.svc.agiSrv != nil, AMIEnabled: d.svc.ami.Enabled}
	d.svc.mu.Unlock()
	st.Services.AMILogin = d.amiUp.Load()
}
