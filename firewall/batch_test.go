package firewall

import (
	"net/netip"
	"testing"
	"time"
)

// TestAppendAddMessageMatchesBuilder pins the hand-built message to the
// bytes netlink's generic builder produces for the same member.
func TestAppendAddMessageMatchesBuilder(t *testing.T) {
	for _, m := range []Member{
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Timeout: time.Hour},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Prefix: netip.MustParsePrefix("2001:db8::/48"), Timeout: 1500 * time.Millisecond},
		{Prefix: netip.MustParsePrefix("2001:db8::7/128")},
	} {
		for _, set := range []string{"dialgate-1-v4", "dialgate-10-v6-t", "x"} {
			req := addMessage(set, m)
			want := req.Serialize()
			got := appendAddMessage([]byte("prefix"), req.Seq, set, m)
			if string(got[6:]) != string(want) {
				t.Errorf("%s %v:\n got %x\nwant %x", set, m, got[6:], want)
			}
		}
	}
}

func BenchmarkAppendAddMessage(b *testing.B) {
	m := Member{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Timeout: time.Hour}
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for i := 0; i < b.N; i++ {
		buf = appendAddMessage(buf[:0], 1, "dialgate-1-v4", m)
	}
}

func BenchmarkAddMessage(b *testing.B) {
	m := Member{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Timeout: time.Hour}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = addMessage("dialgate-1-v4", m).Serialize()
	}
}
