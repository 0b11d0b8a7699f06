package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dialgate/dialgate/etcdtest"
	"github.com/dialgate/dialgate/firewall/fwtest"
	"github.com/dialgate/dialgate/localapi"
)

// sharedNode is one PBX of a dialgate cluster on etcd: a lab of its own
// (its kernel, its daemon) and a cable to etcd the test can cut.
type sharedNode struct {
	*e2e
	name  string
	cable *etcdtest.Cable
}

// storeConf is the [store] table of a node reaching etcd through cable.
func storeConf(e *e2e, cable *etcdtest.Cable, prefix, node string) string {
	return fmt.Sprintf("[store]\nbackend = \"etcd\"\nendpoints = [%q]\nprefix = %q\nnode = %q\nreplica = %q\nrequest_timeout = \"1s\"\ndial_timeout = \"1s\"\n",
		cable.UnixEndpoints()[0], prefix, node, filepath.Join(e.dir, "db", "replica.db"))
}

// newSharedNodes starts n daemons sharing the database under prefix in
// c, each initialised and serving, with conf appended to their configs.
// etcd is reached over unix sockets: the daemons run in their labs'
// network namespaces, the etcd members in the test's.
func newSharedNodes(t testing.TB, c *etcdtest.Cluster, n int, prefix, conf string) []*sharedNode {
	t.Helper()
	nodes := make([]*sharedNode, n)
	for i := range nodes {
		e := newE2E(t)
		cable := c.Cable(t)
		name := fmt.Sprintf("pbx-%c", 'a'+i)
		e.appendConfig(storeConf(e, cable, prefix, name) + conf)
		e.lab.Echo(t, "tcp", 22)
		out := e.ok("init")
		if i == 0 && !strings.Contains(out, "created an empty dialgate database in etcd") {
			t.Fatalf("first init on etcd:\n%s", out)
		}
		if i > 0 && strings.Contains(out, "created an empty") {
			t.Fatalf("init on %s created the shared database again:\n%s", name, out)
		}
		e.startServe()
		nodes[i] = &sharedNode{e2e: e, name: name, cable: cable}
	}
	return nodes
}

// reaches polls until src reaches the node's SSH port (want true) or is
// dropped (want false), and returns how long it took.
func (n *sharedNode) reaches(t *testing.T, src netip.Addr, want bool, within time.Duration) time.Duration {
	t.Helper()
	dst := fwtest.ServerV4
	if src.Is6() {
		dst = fwtest.ServerV6
	}
	start := time.Now()
	for {
		ok, err := n.lab.Reach("tcp", src, dst, 22, 150*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if ok == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: %s -> :22 reachable=%v after %s, want %v", n.name, src, ok, within, want)
		}
	}
}

// statusCode runs `status --check` and returns its line and exit code.
func (n *sharedNode) statusCode() (string, int) {
	out, errOut, code := n.run("status", "--check")
	return out + errOut, code
}

// TestSharedStoreThreeNodes: three PBXes on one etcd trust the same
// people. An allow on A admits packets on B and C, a door grant on A
// opens B and C, guesses spread over the nodes lock once; a node cut off
// keeps filtering with its last state, refuses changes and the door,
// says so, and catches up when mended, past a compaction; with etcd gone
// altogether every node keeps filtering.
func TestSharedStoreThreeNodes(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	nodes := newSharedNodes(t, c, 3, "/dialgate-e2e/", lockoutConf)
	a, b, cc := nodes[0], nodes[1], nodes[2]
	stranger := fwtest.ClientV6

	a.ok("account", "add", "alice", "--perms", "8")
	a.passcode("alice", "48151623", aliceNumber)
	for _, n := range nodes {
		n.reaches(t, fwtest.OtherV4, false, time.Second)
	}

	// An allow on A reaches every kernel.
	a.ok("allow", "ip", "alice", fwtest.OtherV4.String())
	for _, n := range nodes[1:] {
		took := n.reaches(t, fwtest.OtherV4, true, time.Second)
		t.Logf("allow on %s -> packet accepted on %s: %s", a.name, n.name, took.Round(time.Millisecond))
	}

	// A door grant on A opens B and C; the grant is listed everywhere.
	out, code := a.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber)
	if code != 0 {
		t.Fatalf("door on %s: exit %d\n%s", a.name, code, out)
	}
	wantOutcome(t, "door on a", out, "granted", "granted")
	for _, n := range nodes {
		n.reaches(t, fwtest.ClientV4, true, time.Second)
	}
	if gl := cc.ok("grants", "list"); !strings.Contains(gl, fwtest.ClientV4.String()) {
		t.Errorf("grants list on %s lacks a's grant:\n%s", cc.name, gl)
	}

	// Five wrong passcodes from caller 666, spread over the three doors,
	// lock it everywhere: the counter is shared.
	for i, n := range []*sharedNode{a, b, b, cc, a} {
		out, _ := n.call("99990000", "666", fwtest.OtherV4.String(), "--account", aliceNumber)
		want := "denied"
		if i == 4 {
			want = "locked"
		}
		if r, _ := outcome(out); r != want {
			t.Fatalf("guess %d on %s: DIALGATE_RESULT=%s, want %s\n%s", i+1, n.name, r, want, out)
		}
	}
	out, _ = cc.call("48151623", "666", fwtest.OtherV4.String(), "--account", aliceNumber)
	wantOutcome(t, "the right passcode from the locked caller on c", out, "locked", "locked")
	audit := cc.ok("audit", "--limit", "0")
	for _, want := range []string{"NODE", "pbx-a", "pbx-b", "pbx-c"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit on c lacks %q:\n%s", want, audit)
		}
	}

	// One of the three etcd members down: the cluster has its quorum,
	// nothing changes for the PBXes.
	c.Stop(0)
	a.ok("allow", "ip", "alice", "198.51.100.7")
	deadline := time.Now().Add(2 * time.Second)
	for !slices.ContainsFunc(cc.status().Entries, func(e localapi.EntryInfo) bool { return e.Value == "198.51.100.7" }) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the allow made with an etcd member down never arrived", cc.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line, code := b.statusCode(); code != 0 {
		t.Errorf("one etcd member down: %s exit %d %q", b.name, code, line)
	}
	c.Restart(0)

	// C killed (-9) while A changes the whitelist: its kernel keeps what
	// it had, and started again it catches up.
	cc.stopWith(syscall.SIGKILL)
	a.ok("allow", "ip", "alice", fwtest.OtherV6.String())
	cc.reaches(t, fwtest.OtherV4, true, time.Second)
	cc.reaches(t, fwtest.OtherV6, false, time.Second)
	cc.startServe()
	cc.reaches(t, fwtest.OtherV6, true, 5*time.Second)
	a.ok("deny", fwtest.OtherV6.String())
	cc.reaches(t, fwtest.OtherV6, false, time.Second)

	// B is cut off from etcd.
	b.cable.Cut()
	deadline = time.Now().Add(5 * time.Second)
	for {
		line, code := b.statusCode()
		if code == 5 && strings.Contains(line, "protected: yes, store unreachable since") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --check on the cut node: exit %d, %q", code, line)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.fails(1, "unreachable", "allow", "ip", "alice", "198.51.100.9")
	out, _ = b.call("48151623", "555", fwtest.ClientV4.String(), "--account", aliceNumber)
	wantOutcome(t, "door on the cut node", out, "error", "store-unreachable")
	if strings.Contains(out, "GET DATA") {
		t.Errorf("the cut node's door asked for digits:\n%s", out)
	}
	// It keeps filtering with what it had: nothing opened, nothing lost.
	b.reaches(t, fwtest.OtherV4, true, time.Second)
	b.reaches(t, stranger, false, time.Second)

	// Meanwhile A changes the whitelist, and etcd compacts past what B
	// has seen.
	a.ok("deny", fwtest.OtherV4.String())
	a.ok("allow", "ip", "alice", stranger.String())
	cli := c.Client(t)
	resp, err := cli.Get(context.Background(), "compact-here")
	if err != nil {
		t.Fatal(err)
	}
	c.Compact(t, resp.Header.Revision)
	b.reaches(t, fwtest.OtherV4, true, time.Second) // still its last state
	cc.reaches(t, fwtest.OtherV4, false, time.Second)

	b.cable.Mend()
	took := b.reaches(t, stranger, true, 15*time.Second)
	b.reaches(t, fwtest.OtherV4, false, time.Second)
	t.Logf("cut node caught up %s after the cable was mended", took.Round(time.Millisecond))
	st := b.status()
	if st.Store == nil || !st.Store.Reachable || st.Store.Resyncs < 1 {
		t.Errorf("store after the mend: %+v (want reachable, a resync for the compaction)", st.Store)
	}
	if line, code := b.statusCode(); code != 0 {
		t.Errorf("status --check after the mend: exit %d %q", code, line)
	}

	// etcd gone altogether: every node keeps filtering.
	c.StopAll()
	for _, n := range nodes {
		n.reaches(t, stranger, true, time.Second)
		n.reaches(t, fwtest.OtherV4, false, time.Second)
	}
	for _, n := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, code := n.statusCode(); code == 5 {
				break
			}
			if time.Now().After(deadline) {
				line, code := n.statusCode()
				t.Fatalf("%s with etcd stopped: exit %d %q", n.name, code, line)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	c.RestartAll()
	deadline = time.Now().Add(20 * time.Second)
	for {
		if _, code := a.statusCode(); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never found etcd again")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.ok("deny", stranger.String())
	b.reaches(t, stranger, false, 10*time.Second)
}

// setStore rewrites the node's config with the given [store] table.
func (e *e2e) setStore(table string) {
	e.t.Helper()
	conf := fmt.Sprintf("db = %q\nsocket = %q\n%s", filepath.Join(e.dir, "db", "dialgate.db"), filepath.Join(e.dir, "run", "dialgate.sock"), table)
	if err := os.WriteFile(e.cfg, []byte(conf), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// TestSharedStoreMigrateBackupRestore is the administrator's move to
// etcd and back: migrate a serving PBX's file to etcd (refused while the
// daemon holds it, and into a prefix that already holds a database),
// serve from etcd, take a backup that is a database of its own, restore
// the firewall from the replica with etcd down (a boot before the
// network), and migrate back into a new file.
func TestSharedStoreMigrateBackupRestore(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	cable := c.Cable(t)
	e := newE2E(t)
	e.lab.Echo(t, "tcp", 22)
	etcdTable := storeConf(e, cable, "/migrated/", "pbx-a")
	// The etcd settings are in place, the backend still the file.
	e.setStore(strings.Replace(etcdTable, `backend = "etcd"`, `backend = "bbolt"`, 1))
	e.ok("init")
	e.startServe()
	e.ok("account", "add", "alice", "--perms", "8")
	e.ok("allow", "ip", "alice", fwtest.ClientV4.String())
	e.lab.Check(t, probe, ssh(true))

	e.fails(1, "stop the daemon first", "store", "migrate", "--to", "etcd")
	e.stop()
	out := e.ok("store", "migrate", "--to", "etcd")
	if !strings.Contains(out, "copied") || !strings.Contains(out, `set backend = "etcd"`) {
		t.Fatalf("migrate --to etcd:\n%s", out)
	}
	e.fails(1, "already holds a dialgate database", "store", "migrate", "--to", "etcd")

	e.setStore(etcdTable)
	e.startServe()
	e.lab.Check(t, probe, ssh(true))
	if st := e.status(); st.Store == nil || !st.Store.Reachable || st.Store.Node != "pbx-a" {
		t.Fatalf("status on etcd: %+v", st.Store)
	}
	e.ok("allow", "ip", "alice", fwtest.ClientV6.String())
	backup := filepath.Join(t.TempDir(), "backup.db")
	e.ok("db", "backup", backup)
	// server (no SSH session here: no admin) and alice.
	if out := e.ok("db", "check", backup); !strings.Contains(out, "sound; ") || !strings.Contains(out, "2 accounts") {
		t.Errorf("db check of a backup taken on etcd:\n%s", out)
	}

	// A boot with etcd unreachable: the kernel is empty, restore fills it
	// from the replica alone.
	e.stop()
	cable.Cut()
	// With no daemon, db check and backup read the replica.
	if out := e.ok("db", "check"); !strings.Contains(out, "replica.db: sound; ") {
		t.Errorf("offline db check on etcd:\n%s", out)
	}
	offline := filepath.Join(t.TempDir(), "offline.db")
	if out := e.ok("db", "backup", offline); !strings.Contains(out, "from this node's replica") {
		t.Errorf("offline db backup on etcd:\n%s", out)
	}
	e.ok("db", "check", offline)
	e.ok("remove", "--yes")
	e.lab.Check(t, probe, fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: true})
	e.ok("restore")
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: true},
		fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 22, Want: false})
	// And the daemon starts from the replica too, saying etcd is away.
	e.startServeExpect(5)
	e.fails(1, "unreachable", "allow", "ip", "alice", "198.51.100.9")
	e.stop()
	cable.Mend()

	// Back to a file: never over an existing one.
	e.fails(1, "already exists", "store", "migrate", "--to", "bbolt")
	db := filepath.Join(e.dir, "db", "dialgate.db")
	if err := os.Rename(db, db+".old"); err != nil {
		t.Fatal(err)
	}
	out = e.ok("store", "migrate", "--to", "bbolt")
	if !strings.Contains(out, `set backend = "bbolt"`) {
		t.Fatalf("migrate --to bbolt:\n%s", out)
	}
	e.setStore(strings.Replace(etcdTable, `backend = "etcd"`, `backend = "bbolt"`, 1))
	e.startServe()
	e.lab.Check(t, probe, ssh(true),
		fwtest.Probe{Proto: "tcp", Src: fwtest.ClientV6, Dst: fwtest.ServerV6, Port: 22, Want: true})
	if st := e.status(); st.Store != nil {
		t.Errorf("status on bbolt shows a shared store: %+v", st.Store)
	}
}
