package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/ami/amitest"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// fakeAsterisk runs the fake AMI server inside the lab's server
// namespace, where the daemon's 127.0.0.1 is.
func fakeAsterisk(t *testing.T, lab *fwtest.Lab, opts amitest.Options) *amitest.Server {
	t.Helper()
	var srv *amitest.Server
	err := fwtest.Do(lab.Server, func() (err error) {
		srv, err = amitest.Start(opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func amiConf(srv *amitest.Server, secret string, extra string) string {
	return fmt.Sprintf("[ami]\nenabled = true\naddr = %q\nusername = %q\nsecret = %q\n%s",
		srv.Addr(), amitest.DefaultUsername, secret, extra)
}

// TestDoorGrantsRegisteredContact: the account names its extension; a
// call from that extension needs no account number, and the grant goes to
// where the extension is registered from (looked up over AMI), not to the
// channel's address; a re-registration from elsewhere moves it; with AMI
// gone the door falls back to the channel address (here for a caller who
// keys the account number from another phone).
func TestDoorGrantsRegisteredContact(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	srv := fakeAsterisk(t, e.lab, amitest.Options{
		SIPPeers: []amitest.SIPPeer{{Name: "201", Addr: netip.AddrPortFrom(fwtest.ClientV4, 5060)}},
	})
	e.appendConfig(amiConf(srv, amitest.DefaultSecret, "follow_reregister = true\n"))
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.passcode("alice", "48151623", aliceNumber)
	e.ok("account", "set", "alice", "--extension", "201")

	out, code := e.call("48151623", "201", fwtest.OtherV4.String(), "--channel", "SIP/201-0000001f")
	if code != 0 || askedNumber(out) {
		t.Fatalf("call from extension 201: exit %d\n%s", code, out)
	}
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	if gl := e.ok("grants", "list"); !strings.Contains(gl, "phone:contact") {
		t.Fatalf("grant source:\n%s", gl)
	}

	// The phone moves to another network and registers again.
	srv.Emit(amitest.PeerStatusEvent("201", "Registered", netip.AddrPortFrom(fwtest.OtherV4, 5060)))
	e.eventually(3*time.Second, ssh(false), from(fwtest.OtherV4, true))
	if a := e.ok("audit"); !strings.Contains(a, "grant.move") {
		t.Errorf("no audit record of the move:\n%s", a)
	}

	// Asterisk's manager goes away: calls still work, on the channel
	// address.
	srv.Close()
	e.ok("grants", "revoke", fwtest.OtherV4.String())
	out, code = e.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber)
	if code != 0 {
		t.Fatalf("call with AMI down: %s", out)
	}
	e.lab.Check(t, probe, ssh(true))
	if gl := e.ok("grants", "list"); !strings.Contains(gl, "phone:channel") {
		t.Fatalf("fallback grant source:\n%s", gl)
	}
}

// TestAMIWrongSecret: a refused login is reported and retried; the daemon
// serves the firewall and the door regardless.
func TestAMIWrongSecret(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	srv := fakeAsterisk(t, e.lab, amitest.Options{FailedLoginDelay: -1,
		SIPPeers: []amitest.SIPPeer{{Name: "201", Addr: netip.AddrPortFrom(fwtest.OtherV4, 5060)}}})
	e.appendConfig(amiConf(srv, "wrong-secret-0123456789", ""))
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.passcode("alice", "48151623", aliceNumber)
	e.ok("account", "set", "alice", "--extension", "201")
	if out, code := e.call("48151623", "201", fwtest.ClientV4.String(), "--channel", "SIP/201-0000001f"); code != 0 {
		t.Fatalf("door with AMI refused: %s", out)
	}
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false))
	logs, _ := filepath.Glob(filepath.Join(e.dir, "serve-*.log"))
	var all string
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		all += string(b)
	}
	if !strings.Contains(all, "AMI login refused") {
		t.Errorf("the refused login is not reported clearly:\n%s", all)
	}
}

// TestDialplanInstall writes the include into a config file between the
// markers, keeps a backup, reloads the dialplan through AMI, and does
// nothing the second time.
func TestDialplanInstall(t *testing.T) {
	e := newE2E(t)
	srv := fakeAsterisk(t, e.lab, amitest.Options{})
	e.appendConfig(amiConf(srv, amitest.DefaultSecret, ""))
	e.ok("init")
	e.startServe()
	file := filepath.Join(t.TempDir(), "extensions_custom.conf")
	orig := "[from-internal-custom]\nexten => 1234,1,Playback(demo-congrats)\n"
	if err := os.WriteFile(file, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	out := e.ok("dialplan", "install", "--file", file)
	if !strings.Contains(out, "reloaded through AMI") || !strings.Contains(out, "backup") {
		t.Fatalf("install:\n%s", out)
	}
	got, _ := os.ReadFile(file)
	for _, want := range []string{orig, "; BEGIN dialgate", "exten => *47,1,Goto(dialgate-authorize,s,1)", "AGI(agi://127.0.0.1:4573/authorize)", "; END dialgate"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("installed file lacks %q:\n%s", want, got)
		}
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", fi.Mode().Perm())
	}
	reloads := 0
	for _, m := range srv.Received() {
		if strings.EqualFold(m.Get("Action"), "Reload") && m.Get("Module") == "pbx_config" {
			reloads++
		}
	}
	if reloads != 1 {
		t.Errorf("%d dialplan reloads over AMI, want 1", reloads)
	}
	if again := e.ok("dialplan", "install", "--file", file); !strings.Contains(again, "nothing changed") {
		t.Errorf("second install:\n%s", again)
	}
	if printed := e.ok("dialplan", "print", "--extension", "*48"); !strings.Contains(printed, "exten => *48,1") {
		t.Errorf("print:\n%s", printed)
	}
	e.fails(exitUsage, "", "dialplan", "print", "--extension", "*47\nexten => 666,1,System(reboot)")
}

// TestDoorGrantsPJSIPContacts: a chan_pjsip endpoint with two registered
// contacts gets a grant for each.
func TestDoorGrantsPJSIPContacts(t *testing.T) {
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	srv := fakeAsterisk(t, e.lab, amitest.Options{NoChanSIP: true, Endpoints: []amitest.Endpoint{{
		Name: "202",
		Contacts: []amitest.Contact{
			{URI: "sip:202@" + fwtest.ClientV4.String() + ":5060", Status: "Reachable"},
			{URI: "sip:202@[" + fwtest.ClientV6.String() + "]:5062;transport=udp", Status: "Reachable"},
		},
	}}})
	e.appendConfig(amiConf(srv, amitest.DefaultSecret, ""))
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "bob", "--perms", "8")
	e.passcode("bob", "48151623", "101")
	e.ok("account", "set", "bob", "--extension", "202")
	if out, code := e.call("48151623", "202", fwtest.OtherV4.String(), "--channel", "PJSIP/202-00000001"); code != 0 || askedNumber(out) {
		t.Fatalf("call: %s", out)
	}
	e.lab.Check(t, probe, ssh(true), from(fwtest.OtherV4, false),
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: true})
}
