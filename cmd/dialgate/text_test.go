package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/store"
)

func TestPlural(t *testing.T) {
	for _, tc := range []struct {
		n          int
		noun, want string
	}{
		{0, "entry", "0 entries"},
		{1, "entry", "1 entry"},
		{2, "entry", "2 entries"},
		{1, "grant", "1 grant"},
		{3, "grant", "3 grants"},
		{2, "key", "2 keys"},
		{2, "day", "2 days"},
		{2, "secret SIP domain", "2 secret SIP domains"},
		{1, "rule", "1 rule"},
	} {
		if got := plural(tc.n, tc.noun); got != tc.want {
			t.Errorf("plural(%d, %q) = %q, want %q", tc.n, tc.noun, got, tc.want)
		}
	}
}

// TestTextTimesHaveZone: the audit log's text shows each time in local
// time with its zone.
func TestTextTimesHaveZone(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	for _, tc := range []struct {
		zone *time.Location
		want string
	}{
		{time.UTC, "2026-12-01 17:00:00 UTC"},
		{time.FixedZone("CET", 3600), "2026-12-01 18:00:00 CET"},
	} {
		time.Local = tc.zone
		var b bytes.Buffer
		if err := printAudit(&b, []store.AuditRecord{{Time: time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC), Action: "grant"}}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("audit text in %s lacks %q:\n%s", tc.zone, tc.want, b.String())
		}
	}
}
