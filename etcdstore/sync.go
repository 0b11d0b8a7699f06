package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dialgate/dialgate/store"
)

// pageSize bounds one range read of a full load: 10 000 entries are some
// 30 000 keys, more than one response should carry.
const pageSize = 2000

// probeEvery is how often the link to etcd is checked while the watch is
// quiet: a cut network does not end a watch, it only stops it talking.
const probeEvery = time.Second

// snapshot is the whole database at one revision.
type snapshot struct {
	rev, mark int64
	origin    string
	ops       []store.Op
}

// origin names the etcd cluster that answered: revisions of one cluster
// mean nothing in another (a cluster rebuilt from scratch and seeded
// again can reach the same mark revision with other content).
func origin(h *etcdserverpb.ResponseHeader) string {
	return fmt.Sprintf("etcd cluster %x", h.GetClusterId())
}

// readAll reads every key of the prefix at one revision, page by page.
// A prefix without a mark holds no complete database (ErrNoDatabase).
//
// Each request has the request timeout to itself: a large database takes
// many pages, and what bounds a page is the link, not the database size.
func (s *Store) readAll(ctx context.Context) (snapshot, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	first, err := s.cli.Get(clientv3.WithRequireLeader(rctx), s.lay.mark())
	cancel()
	if err != nil {
		return snapshot{}, err
	}
	if len(first.Kvs) == 0 {
		return snapshot{}, fmt.Errorf("etcd prefix %s holds no complete dialgate database (run \"dialgate init\" or \"dialgate store migrate --to etcd\"): %w", s.lay.prefix, store.ErrNoDatabase)
	}
	snap := snapshot{rev: first.Header.Revision, mark: first.Kvs[0].ModRevision, origin: origin(first.Header)}
	end := clientv3.GetPrefixRangeEnd(s.lay.prefix)
	key := s.lay.prefix
	for {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := s.cli.Get(clientv3.WithRequireLeader(rctx), key,
			clientv3.WithRange(end), clientv3.WithRev(snap.rev), clientv3.WithLimit(pageSize))
		cancel()
		if err != nil {
			return snapshot{}, err
		}
		for _, kv := range resp.Kvs {
			if op, ok := s.lay.op(kv.Key, kv.Value, false); ok {
				snap.ops = append(snap.ops, op)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return snap, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// resync replaces the replica by the shared store's current content;
// notify tells the daemon (not at Open: it applies the store at start).
func (s *Store) resync(ctx context.Context, notify bool) error {
	snap, err := s.readAll(ctx)
	if err != nil {
		return err
	}
	if err := s.db.ResetReplica(snap.rev, snap.mark, snap.origin, snap.ops); err != nil {
		return err
	}
	s.mu.Lock()
	s.health.Resyncs++
	s.mu.Unlock()
	s.log.Info("replica reloaded from the shared store", "revision", snap.rev, "keys", len(snap.ops))
	s.advanced(snap.rev)
	if notify {
		s.touch(store.Touched{Full: true})
		s.notifyChanged()
	}
	return nil
}

// catchUp brings the replica up to date at start: a never-filled replica,
// or one whose mark is not the shared store's, is reloaded whole; an
// up-to-date one is left as it is (the watch takes over from its
// revision).
func (s *Store) catchUp(ctx context.Context) error {
	rev, mark, err := s.db.ReplicaState()
	if err != nil {
		return err
	}
	if rev != 0 {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := s.cli.Get(clientv3.WithRequireLeader(rctx), s.lay.mark())
		cancel()
		if err != nil {
			s.unreachable(err)
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		have, err := s.db.ReplicaOrigin()
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 1 && resp.Kvs[0].ModRevision == mark && have == origin(resp.Header) {
			s.reachable()
			s.advanced(rev)
			return nil
		}
	}
	if err := s.resync(ctx, false); err != nil {
		if !errors.Is(err, store.ErrNoDatabase) {
			s.unreachable(err)
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return err
	}
	s.reachable()
	return nil
}

// run follows the shared store until ctx ends: a watch from the
// replica's revision applies other nodes' commits; a compacted revision
// means a full reload (the changes in between are gone from etcd's
// history, so applying what is left would leave a gap); a probe notices
// a link that went quiet.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	restart, reload := make(chan struct{}, 1), make(chan struct{}, 1)
	go s.probe(ctx, restart, reload)
	// A watch that keeps failing the same way (a database deleted behind
	// dialgate's back) is retried less and less often, up to every 2 s:
	// the log says it every 2 s, not five times a second.
	pause := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := s.watch(ctx, restart, reload)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.unreachable(err)
			pause = min(2*pause, 2*time.Second)
		} else {
			pause = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
	}
}

// watch runs one watch from the replica's revision until it fails, or a
// restart or a reload is asked for.
func (s *Store) watch(ctx context.Context, restart, reload <-chan struct{}) error {
	rev, _, err := s.db.ReplicaState()
	if err != nil {
		return err
	}
	if rev == 0 {
		return s.resync(ctx, true)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.lay.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-restart:
			return nil
		case <-reload:
			return s.resync(ctx, true)
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch ended")
			}
			if errors.Is(resp.Err(), rpctypes.ErrFutureRev) {
				// etcd is behind the replica: restored from an older
				// snapshot, or a new cluster. Its content is the truth now.
				s.log.Warn("the shared store is at an older revision than this node's replica; reloading", "replica", rev)
				return s.resync(ctx, true)
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				s.log.Warn("the shared store compacted the revisions this node had not seen; reloading", "from", rev+1, "compacted", resp.CompactRevision)
				return s.resync(ctx, true)
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			if len(resp.Events) == 0 {
				continue
			}
			s.reachable()
			last, err := s.apply(resp.Events)
			if err != nil {
				s.log.Error("changes from the shared store not applied; keeping the last state", "err", err)
				s.setError(err)
				// The watch would replay the same revision for ever; the
				// current content may be sound again (the record fixed or
				// removed), and a reload reads only that.
				if rerr := s.resync(ctx, true); rerr != nil {
					return err
				}
				return nil
			}
			rev = last
		}
	}
}

// apply turns a watch response into the replica's changes, one per
// revision, and applies them in one transaction. A change that deletes
// the schema version (the shared database was deleted) is refused: the
// node keeps filtering with its last state rather than with nothing.
func (s *Store) apply(events []*clientv3.Event) (int64, error) {
	var changes []store.Change
	for _, ev := range events {
		kv := ev.Kv
		rev := kv.ModRevision
		if len(changes) == 0 || changes[len(changes)-1].Rev != rev {
			changes = append(changes, store.Change{Rev: rev})
		}
		c := &changes[len(changes)-1]
		deleted := ev.Type == mvccpb.DELETE
		if string(kv.Key) == s.lay.mark() {
			if deleted {
				return 0, fmt.Errorf("etcd prefix %s: the mark was deleted at revision %d (was the database removed?)", s.lay.prefix, rev)
			}
			c.Mark = rev
			continue
		}
		op, ok := s.lay.op(kv.Key, kv.Value, deleted)
		if !ok {
			continue
		}
		if deleted && op.Bucket == "meta" && string(op.Key) == "schema" {
			return 0, fmt.Errorf("etcd prefix %s: the schema version was deleted at revision %d (was the database removed?)", s.lay.prefix, rev)
		}
		c.Ops = append(c.Ops, op)
	}
	last := changes[len(changes)-1].Rev
	// Revisions that touched none of dialgate's keys (a push's lock) are
	// not changes; the next watch starting past them is harmless.
	changes = slices.DeleteFunc(changes, func(c store.Change) bool { return len(c.Ops) == 0 && c.Mark == 0 })
	applied, touched, err := s.db.ApplyChanges(changes)
	if err != nil {
		return 0, err
	}
	s.touch(touched)
	s.advanced(last)
	if applied {
		s.notifyChanged()
	}
	return last, nil
}

func (s *Store) setError(err error) {
	s.mu.Lock()
	s.health.LastError = err.Error()
	s.mu.Unlock()
}

// probe reads the mark every probeEvery: the answer (or its absence)
// says whether etcd is reachable; a replica that stays behind the mark
// while etcd answers means a stuck watch, which is restarted; and an
// answer from another cluster, or a mark older than the replica's (etcd
// restored from an older snapshot), means the replica's revisions mean
// nothing there: a watch would wait for a revision the cluster has not
// reached and miss what it has, so the replica is reloaded.
func (s *Store) probe(ctx context.Context, restart, reload chan<- struct{}) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	behind := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The replica first: its mark only ever comes from etcd, so read
		// before the question it can only be at or behind the answer, and
		// an answer older than it is etcd going back, not a commit of
		// this node's landing in between.
		_, mark, merr := s.db.ReplicaState()
		have, oerr := s.db.ReplicaOrigin()
		pctx, cancel := context.WithTimeout(ctx, min(s.cfg.RequestTimeout, 2*time.Second))
		resp, err := s.cli.Get(clientv3.WithRequireLeader(pctx), s.lay.mark())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.unreachable(err)
			continue
		}
		s.reachable()
		if merr != nil || len(resp.Kvs) == 0 {
			behind = 0
			continue
		}
		now := resp.Kvs[0].ModRevision
		switch {
		case oerr != nil:
		case have != origin(resp.Header) || now < mark:
			s.log.Warn("the shared store is another cluster, or went back in time; reloading the replica",
				"replica_origin", have, "store_origin", origin(resp.Header), "replica_mark", mark, "store_mark", now)
			poke(reload)
		case now > mark:
			if behind++; behind >= 3 {
				behind = 0
				s.log.Warn("replica behind the shared store; restarting the watch", "replica_mark", mark, "store_mark", now)
				poke(restart)
			}
			continue
		}
		behind = 0
	}
}

// poke sends on ch unless a signal is pending already.
func poke(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
