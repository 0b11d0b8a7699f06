package store

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// sharedLog is a shared store in memory: the commit rule of the real one
// (a commit is accepted only at the current mark) and a log of commits
// that replicas replay, as the etcd watch does.
type sharedLog struct {
	mu   sync.Mutex
	rev  int64
	mark int64
	log  []logged
}

type logged struct {
	rev int64
	ops []Op
}

func (s *sharedLog) commit(mark int64, ops []Op) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mark != s.mark {
		return 0, fmt.Errorf("mark %d, store at %d: %w", mark, s.mark, ErrConflict)
	}
	s.rev++
	s.mark = s.rev
	s.log = append(s.log, logged{s.rev, ops})
	return s.rev, nil
}

// catchUp replays onto r every commit it does not hold.
func (s *sharedLog) catchUp(t *testing.T, r *DB) {
	t.Helper()
	s.mu.Lock()
	log := append([]logged(nil), s.log...)
	s.mu.Unlock()
	for _, l := range log {
		if _, _, err := r.ApplyChanges([]Change{{Rev: l.rev, Mark: l.rev, Ops: l.ops}}); err != nil {
			t.Fatal(err)
		}
	}
}

// seedShared makes a standalone database and loads its content, as a
// migration does, into the shared log at revision 1.
func seedShared(t *testing.T) (*sharedLog, []Op) {
	t.Helper()
	src := openTest(t)
	mustUpdate(t, src, func(tx Tx) error { return tx.CreateAccount(Account{Name: "alice", Number: "100"}) })
	var ops []Op
	if err := src.Ops(func(op Op) error { ops = append(ops, op); return nil }); err != nil {
		t.Fatal(err)
	}
	s := &sharedLog{rev: 1, mark: 1}
	return s, ops
}

func openReplica(t *testing.T, s *sharedLog, ops []Op) *DB {
	t.Helper()
	r, err := OpenReplica(filepath.Join(t.TempDir(), "replica.db"), ReplicaOptions{Source: "test", Commit: s.commit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.View(func(Tx) error { return nil }); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("View of an unfilled replica: %v, want ErrNoDatabase", err)
	}
	if err := r.ResetReplica(1, 1, "test", ops); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReplicaCommitsThroughSharedStore(t *testing.T) {
	s, ops := seedShared(t)
	a, b := openReplica(t, s, ops), openReplica(t, s, ops)

	mustUpdate(t, a, func(tx Tx) error {
		_, err := tx.AddEntry(Entry{Account: "alice", Kind: KindIP, Value: "192.0.2.7"})
		return err
	})
	// b has not seen a's commit: its write is refused, and nothing of it
	// stays in b.
	err := b.Update(func(tx Tx) error { return tx.CreateAccount(Account{Name: "bob"}) })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale replica committed: %v", err)
	}
	mustView(t, b, func(tx Tx) error {
		if _, err := tx.Account("bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("refused write kept locally: %v", err)
		}
		return nil
	})

	s.catchUp(t, b)
	mustView(t, b, func(tx Tx) error {
		es, err := tx.EntriesByValue("192.0.2.7")
		if err != nil || len(es) != 1 || es[0].ID != "e1" {
			t.Errorf("b after catching up: %v %v", es, err)
		}
		return nil
	})
	mustUpdate(t, b, func(tx Tx) error { return tx.CreateAccount(Account{Name: "bob"}) })
	// a replays its own commit without harm and then b's.
	s.catchUp(t, a)
	mustView(t, a, func(tx Tx) error {
		if _, err := tx.Account("bob"); err != nil {
			t.Error(err)
		}
		es, err := tx.Entries()
		if err != nil || len(es) != 1 {
			t.Errorf("a: %v %v", es, err)
		}
		return nil
	})
	// Sequences travel too: the next entry on b is e2, not e1 again.
	mustUpdate(t, b, func(tx Tx) error {
		e, err := tx.AddEntry(Entry{Account: "bob", Kind: KindIP, Value: "192.0.2.8"})
		if err == nil && e.ID != "e2" {
			t.Errorf("entry ID on b %s, want e2", e.ID)
		}
		return err
	})
}

func TestReplicaAndStandaloneNotConfused(t *testing.T) {
	s, ops := seedShared(t)
	r := openReplica(t, s, ops)
	path := r.Path()
	r.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrReplica) {
		t.Errorf("Open of a replica: %v, want ErrReplica", err)
	}
	if _, err := OpenReplica(path, ReplicaOptions{Source: "other", Commit: s.commit}); !errors.Is(err, ErrReplica) {
		t.Errorf("replica of another source: %v, want ErrReplica", err)
	}
	standalone := openTest(t)
	standalone.Close()
	if _, err := OpenReplica(standalone.Path(), ReplicaOptions{Source: "test", Commit: s.commit}); !errors.Is(err, ErrReplica) {
		t.Errorf("OpenReplica of a standalone database: %v, want ErrReplica", err)
	}
	// What a shared store holds makes a database of its own again.
	out := filepath.Join(t.TempDir(), "out.db")
	if err := CreateFromOps(out, ops); err != nil {
		t.Fatal(err)
	}
	if err := CreateFromOps(out, ops); !errors.Is(err, ErrExists) {
		t.Errorf("CreateFromOps over a file: %v, want ErrExists", err)
	}
	db, err := Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustView(t, db, func(tx Tx) error {
		a, err := tx.AccountByNumber("100")
		if err != nil || a.Name != "alice" {
			t.Errorf("copy: %v %v", a, err)
		}
		return nil
	})
	if err := r.ResetReplica(5, 5, "test", nil); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("reset with nothing: %v, want ErrNoDatabase", err)
	}
}

func TestReplicaBackupIsStandalone(t *testing.T) {
	s, ops := seedShared(t)
	r := openReplica(t, s, ops)
	out := filepath.Join(t.TempDir(), "backup.db")
	if _, err := SaveBackup(out, func(w io.Writer) error { _, err := r.Backup(w); return err }); err != nil {
		t.Fatal(err)
	}
	db, err := Open(out, Options{})
	if err != nil {
		t.Fatalf("a replica's backup does not open as a database: %v", err)
	}
	defer db.Close()
	mustView(t, db, func(tx Tx) error {
		if _, err := tx.Account("alice"); err != nil {
			t.Error(err)
		}
		return nil
	})
}

// A purge on a replica deletes what fits in one shared-store transaction,
// with room for the audit records of the grants it ends; the rest goes
// at the next purge, and every purge fits.
func TestReplicaPurgeFitsOneTransaction(t *testing.T) {
	s, ops := seedShared(t)
	r := openReplica(t, s, ops)
	const maxOps = 128
	r.purgeMax = max((maxOps-8)/6, 1)
	past := time.Now().Add(-time.Hour)
	mustUpdate(t, r, func(tx Tx) error {
		for i := range 100 {
			if _, err := tx.PutGrant(Grant{Account: "alice", IP: fmt.Sprintf("192.0.2.%d", i), Expires: past}); err != nil {
				return err
			}
			if err := tx.PutLockout(Lockout{Key: fmt.Sprintf("cid:%d", i), Failures: []time.Time{past}}); err != nil {
				return err
			}
			if err := tx.Audit(AuditRecord{Time: past.Add(-24 * time.Hour), Action: "old"}); err != nil {
				return err
			}
		}
		return nil
	})
	var got int
	r.commit = func(mark int64, o []Op) (int64, error) { got = len(o); return s.commit(mark, o) }
	rounds := 0
	for left := true; left; rounds++ {
		mustUpdate(t, r, func(tx Tx) error {
			gone, err := tx.PurgeExpiredGrants(time.Now())
			if err != nil {
				return err
			}
			for _, g := range gone {
				if err := tx.Audit(AuditRecord{Action: "grant.expire", Subject: g.IP}); err != nil {
					return err
				}
			}
			nl, err := tx.PurgeLockouts(time.Now(), time.Now().Add(-time.Minute))
			if err != nil {
				return err
			}
			na, err := tx.PurgeAudit(time.Now().Add(-time.Hour), 0)
			left = len(gone)+nl+na > 0
			return err
		})
		if got+1 > maxOps {
			t.Fatalf("round %d wrote %d keys (+ the mark), more than %d", rounds, got, maxOps)
		}
	}
	if rounds < 3 {
		t.Errorf("%d rounds: the bound did not bite", rounds)
	}
	mustView(t, r, func(tx Tx) error {
		gs, _ := tx.Grants()
		ls, _ := tx.Lockouts()
		if len(gs) != 0 || len(ls) != 0 {
			t.Errorf("left after the purges: %d grants, %d lockouts", len(gs), len(ls))
		}
		return nil
	})
}

// What another node's change can have moved in the firewall, as the
// replica applying it reports: addresses before and after for entries,
// grants and FQDN records; everything for account or setting changes and
// FQDN entries; nothing for audit, lockouts and indexes.
func TestReplicaTouched(t *testing.T) {
	s, ops := seedShared(t)
	a, b := openReplica(t, s, ops), openReplica(t, s, ops)
	soon := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		fn   func(Tx) error
		want Touched
	}{
		{"ip entry", func(tx Tx) error {
			_, err := tx.AddEntry(Entry{Account: "alice", Kind: KindIP, Value: "192.0.2.7"})
			return err
		}, Touched{Values: []string{"192.0.2.7"}}},
		{"cidr entry replaced", func(tx Tx) error {
			_, err := tx.DeleteEntry("e1")
			if err == nil {
				_, err = tx.AddEntry(Entry{Account: "alice", Kind: KindCIDR, Value: "198.51.100.0/24"})
			}
			return err
		}, Touched{Values: []string{"192.0.2.7", "198.51.100.0/24"}}},
		{"grant", func(tx Tx) error {
			_, err := tx.PutGrant(Grant{Account: "alice", IP: "203.0.113.9", Expires: soon})
			return err
		}, Touched{Values: []string{"203.0.113.9"}}},
		{"grant moved", func(tx Tx) error {
			_, err := tx.PutGrant(Grant{ID: "g1", Account: "alice", IP: "203.0.113.10", Expires: soon})
			return err
		}, Touched{Values: []string{"203.0.113.10", "203.0.113.9"}}},
		{"fqdn record", func(tx Tx) error {
			return tx.PutFQDN(FQDNRecord{Name: "h.example", Addrs: []string{"192.0.2.50"}})
		}, Touched{Values: []string{"192.0.2.50"}}},
		{"audit and lockout", func(tx Tx) error {
			if err := tx.Audit(AuditRecord{Action: "x"}); err != nil {
				return err
			}
			return tx.PutLockout(Lockout{Key: "cid:1", Failures: []time.Time{time.Now()}})
		}, Touched{}},
		{"fqdn entry", func(tx Tx) error {
			_, err := tx.AddEntry(Entry{Account: "alice", Kind: KindFQDN, Value: "h.example"})
			return err
		}, Touched{Full: true}},
		{"account perms", func(tx Tx) error {
			acct, err := tx.Account("alice")
			if err == nil {
				acct.Perms = NewPermSet(1)
				err = tx.PutAccount(acct)
			}
			return err
		}, Touched{Full: true}},
		{"setting", func(tx Tx) error { return tx.PutSetting("sip.domains", []byte("x")) }, Touched{Full: true}},
	} {
		mustUpdate(t, a, tc.fn)
		s.mu.Lock()
		last := s.log[len(s.log)-1]
		s.mu.Unlock()
		_, got, err := b.ApplyChanges([]Change{{Rev: last.rev, Mark: last.rev, Ops: last.ops}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Full != tc.want.Full || !slices.Equal(got.Values, tc.want.Values) {
			t.Errorf("%s: touched %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
