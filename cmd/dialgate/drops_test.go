package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/localapi"
)

// TestPrintDrops: the listing is most packets first, with service names
// (and the port when the name covers a range), protocol/port outside any
// service, the age of the last drop, what the limit left out and the
// totals; nothing recorded says so.
func TestPrintDrops(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::66")
	ds := []firewall.Drop{
		{Addr: b, Proto: "tcp", Port: 3306, Packets: 1, LastSeen: now.Add(-5 * time.Second)},
		{Addr: a, Proto: "tcp", Port: 22, Packets: 1234, LastSeen: now.Add(-90 * time.Second)},
		{Addr: a, Proto: "udp", Port: 5062, Packets: 40, LastSeen: now.Add(-50 * time.Minute)},
		{Addr: b, Proto: "icmp", Packets: 2, LastSeen: now.Add(-3 * time.Minute)},
	}
	info := selectDrops(firewall.DefaultConfig(), ds, firewall.DropFilter{Limit: 3}, now)
	var out bytes.Buffer
	if err := printDrops(&out, info, now); err != nil {
		t.Fatal(err)
	}
	want := `SOURCE        SERVICE             PACKETS  LAST SEEN
198.51.100.7  ssh (tcp/22)        1234     1m ago
198.51.100.7  sip-udp (udp/5062)  40       50m ago
2001:db8::66  icmp                2        3m ago
... and 1 more (--limit 0 for all)
1 277 packets from 2 sources
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}

	info = selectDrops(firewall.DefaultConfig(), ds, firewall.DropFilter{Service: "tcp/3306"}, now)
	if len(info.Drops) != 1 || info.Drops[0].Addr != b {
		t.Errorf("--service tcp/3306: %+v", info.Drops)
	}
	info = selectDrops(firewall.DefaultConfig(), ds, firewall.DropFilter{Since: time.Minute}, now)
	if len(info.Drops) != 1 || info.Drops[0].Port != 3306 {
		t.Errorf("--since 1m: %+v", info.Drops)
	}

	out.Reset()
	printDrops(&out, selectDrops(firewall.DefaultConfig(), nil, firewall.DropFilter{}, now), now)
	if got := out.String(); got != "no drops recorded (the kernel remembers the last 1h)\n" {
		t.Errorf("empty: %q", got)
	}
}

func TestGroupDigits(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1 000", 1234567: "1 234 567"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestPrintStatusDrops: status gets one summary line when the kernel
// told, none when it could not.
func TestPrintStatusDrops(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, localapi.StatusInfo{Drops: &firewall.DropSummary{Packets: 1234, Sources: 56}})
	if !strings.Contains(b.String(), "drops (last hour): 1 234 packets from 56 sources; dialgate drops for the list\n") {
		t.Errorf("no drops line in\n%s", b.String())
	}
	b.Reset()
	printStatus(&b, localapi.StatusInfo{})
	if strings.Contains(b.String(), "drops") {
		t.Errorf("drops line without a summary:\n%s", b.String())
	}
}
