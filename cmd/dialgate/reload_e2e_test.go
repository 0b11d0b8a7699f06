package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// A reload applies every section it reads, or says which it could not:
// [ami] logs in again with the new secret, [agi] serves the new allow
// list, [metrics] listens where told, and a setting that takes a restart
// makes reload exit non-zero while the rest is applied.
func TestReloadAppliesEverything(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	srv := fakeAsterisk(t, e.lab, amitest.Options{FailedLoginDelay: -1,
		SIPPeers: []amitest.SIPPeer{{Name: "201", Addr: netip.AddrPortFrom(fwtest.OtherV4, 5060)}}})
	base, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	write := func(extra string) {
		t.Helper()
		if err := os.WriteFile(e.cfg, append(append([]byte{}, base...), extra...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(amiConf(srv, "wrong-secret-0123456789", ""))
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.passcode("alice", "48151623", aliceNumber)
	e.ok("account", "set", "alice", "--extension", "201")
	call := func() (string, int) {
		return e.call("48151623", "201", fwtest.ClientV4.String(), "--channel", "SIP/201-0000001f")
	}

	// AMI refuses the wrong secret: the door falls back to the channel.
	if out, code := call(); code != 0 {
		t.Fatalf("door with AMI refused: %s", out)
	}
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	e.ok("grants", "revoke", fwtest.ClientV4.String())

	// [ami] with the right secret, and metrics on: both follow the reload.
	metrics := "127.0.0.1:9163"
	write(amiConf(srv, amitest.DefaultSecret, "") + fmt.Sprintf("[metrics]\nlisten = %q\n", metrics))
	e.ok("reload")
	deadline := time.Now().Add(15 * time.Second)
	for {
		call()
		if ok, _ := e.lab.ReachWith("tcp", fwtest.OtherV4, fwtest.ServerV4, 22, probe, nil); ok {
			break // granted the registered contact: AMI logged in again
		}
		if time.Now().After(deadline) {
			t.Fatal("the door never used AMI after the reload fixed the secret")
		}
		time.Sleep(300 * time.Millisecond)
	}
	body := e.metricsGet(t, metrics)
	if !strings.Contains(body, "dialgate_door_calls_total") || !strings.Contains(body, "dialgate_ami_connected 1") {
		t.Errorf("metrics after reload:\n%.2000s", body)
	}

	// [agi] allow without loopback: new FastAGI connections are refused.
	write(amiConf(srv, amitest.DefaultSecret, "") + "[agi]\nallow = [\"10.99.0.0/24\"]\n")
	e.ok("reload")
	if out, code := call(); code == 0 || strings.Contains(out, "DIALGATE_RESULT=granted") {
		t.Errorf("the door still served loopback after agi.allow dropped it:\n%s", out)
	}
	if _, err := httpGet(e, metrics); err == nil {
		t.Error("metrics still listening after [metrics] was removed")
	}

	// A setting that takes a restart: reload says so, exits non-zero, and
	// applies the rest (agi.allow back to loopback).
	write(amiConf(srv, amitest.DefaultSecret, "") + "[agi]\nallow = [\"127.0.0.0/8\"]\n")
	moved := strings.Replace(string(base), "dialgate.db", "other.db", 1)
	if err := os.WriteFile(e.cfg, []byte(moved+amiConf(srv, amitest.DefaultSecret, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := e.run("reload")
	if code == 0 || !strings.Contains(errOut, "restart") || !strings.Contains(errOut, "db (") {
		t.Errorf("reload with a new db path: exit %d\n%s%s", code, out, errOut)
	}
	if out, code := call(); code != 0 {
		t.Errorf("the door after the partial reload: %s", out)
	}
	if a := e.ok("audit", "--action", "reload", "--result", "partial"); !strings.Contains(a, "db (") {
		t.Errorf("partial reload not audited:\n%s", a)
	}
}

// metricsGet fetches /metrics from inside the server namespace.
func (e *e2e) metricsGet(t *testing.T, addr string) string {
	t.Helper()
	var body string
	var err error
	for i := 0; i < 20; i++ {
		if body, err = httpGet(e, addr); err == nil {
			return body
		}
		time.Sleep(100 * time.Millisecond)
	}
	ss, _ := e.lab.Exec(e.lab.Server, "ss", "-ltnp")
	t.Logf("listening in the server namespace:\n%s", ss)
	logs, _ := filepath.Glob(filepath.Join(e.dir, "serve-*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		t.Logf("%s:\n%s", l, b)
	}
	t.Fatalf("metrics at %s: %v", addr, err)
	return ""
}

// httpGet fetches /metrics from addr inside the lab's server namespace.
// net/http dials on a goroutine of its own, outside the namespace: dial
// here and speak HTTP/1.0 by hand.
func httpGet(e *e2e, addr string) (string, error) {
	var body string
	err := fwtest.Do(e.lab.Server, func() error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	})
	return body, err
}
