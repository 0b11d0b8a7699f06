package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// TestDropsCLI: a stranger's SYNs to 22 show up in `dialgate drops` as
// ssh, with their count, from the daemon and, with the daemon stopped,
// from the kernel directly; status totals them; filters apply; after
// `remove` nothing is left to list.
func TestDropsCLI(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	e.ok("init")
	e.startServe()
	stranger := fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false}
	e.lab.Check(t, probe, stranger, stranger, stranger)

	out := e.ok("drops")
	if !strings.Contains(out, fwtest.OtherV4.String()+"  ssh (tcp/22)") {
		t.Errorf("drops does not list the stranger's ssh:\n%s", out)
	}
	var info localapi.DropsInfo
	if err := json.Unmarshal([]byte(e.ok("drops", "--json", "--service", "ssh", "--since", "5m")), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Drops) != 1 || info.Drops[0].Addr != fwtest.OtherV4 || info.Drops[0].Packets < 3 || info.Drops[0].Service != "ssh" {
		t.Errorf("drops --json --service ssh: %+v", info)
	}
	if out := e.ok("drops", "--service", "sip-udp"); !strings.HasPrefix(out, "no drops recorded") {
		t.Errorf("drops --service sip-udp:\n%s", out)
	}
	if st := e.ok("status"); !strings.Contains(st, "drops (last hour): ") {
		t.Errorf("status has no drops line:\n%s", st)
	}
	e.fails(exitUsage, "--since", "drops", "--since", "-1h")

	e.stop()
	if out := e.ok("drops"); !strings.Contains(out, fwtest.OtherV4.String()+"  ssh (tcp/22)") {
		t.Errorf("drops without the daemon:\n%s", out)
	}
	e.ok("remove", "--yes")
	if out := e.ok("drops"); !strings.HasPrefix(out, "no drops recorded") {
		t.Errorf("drops after remove:\n%s", out)
	}
}

// stripDropAccounting leaves the drop accounting sets' members (and
// what varies with them) out of an `ipset list` or `nft list ruleset`:
// they are counts of traffic, not state, and change with every packet
// dropped and every second.
func stripDropAccounting(out string) string {
	var b strings.Builder
	inSet, inElems := false, false
	for _, l := range strings.SplitAfter(out, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "Name: "):
			inSet = strings.HasPrefix(t, "Name: dialgate-drops-") || strings.HasPrefix(t, "Name: dialgate-seen-")
		case strings.HasPrefix(t, "set "):
			inSet = strings.HasPrefix(t, "set drops-")
		case inSet && strings.HasPrefix(t, "elements = {"):
			inElems = !strings.HasSuffix(t, "}")
			continue
		case inElems:
			inElems = !strings.HasSuffix(t, "}")
			continue
		case inSet && (strings.HasPrefix(t, "Size in memory:") || strings.HasPrefix(t, "Number of entries:") ||
			strings.Contains(t, " timeout ") && !strings.HasPrefix(t, "Header:")):
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}
