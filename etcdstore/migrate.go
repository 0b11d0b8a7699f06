package etcdstore

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/dialgate/dialgate/store"
)

// Push writes a whole database (store.DB.Ops) under cfg's prefix, which
// must hold no dialgate database (store.ErrExists otherwise). The keys go
// in transactions of at most cfg.MaxTxnOps; the mark, which makes the
// database exist for every node, goes last, so a push that dies half way
// leaves nothing any node would read, and is cleared by the next one.
func Push(ctx context.Context, cfg Config, ops []store.Op, progress func(done, total int)) error {
	cfg.defaults()
	lay := newLayout(cfg.Prefix)
	cli, err := Client(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx = clientv3.WithRequireLeader(ctx)

	// One push at a time: a second one would clear the first one's keys
	// half way. The lock lives as long as this process's lease, so a push
	// killed half way does not hold it for ever; every batch checks it
	// still holds the lock.
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(15), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer sess.Close()
	lock := concurrency.NewMutex(sess, lay.prefix+"lock/push")
	if err := lock.TryLock(ctx); err != nil {
		if errors.Is(err, concurrency.ErrLocked) {
			return fmt.Errorf("etcd prefix %s: another node is creating or migrating the database right now: %w", lay.prefix, store.ErrLocked)
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	owner := lock.IsOwner()
	absent := clientv3.Compare(clientv3.CreateRevision(lay.mark()), "=", 0)

	resp, err := cli.Get(ctx, lay.mark())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if len(resp.Kvs) != 0 {
		return fmt.Errorf("etcd prefix %s already holds a dialgate database (last written by %s): %w", lay.prefix, resp.Kvs[0].Value, store.ErrExists)
	}
	// Leftovers of a push that never finished: nobody reads them.
	_, err = cli.Txn(ctx).If(owner, absent).Then(
		clientv3.OpDelete(lay.prefix+"b/", clientv3.WithPrefix()),
		clientv3.OpDelete(lay.prefix+"s/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	per := max(cfg.MaxTxnOps-1, 1)
	for i := 0; i < len(ops); i += per {
		batch := ops[i:min(i+per, len(ops))]
		puts := make([]clientv3.Op, 0, len(batch))
		for _, op := range batch {
			k, err := lay.key(op)
			if err != nil {
				return err
			}
			puts = append(puts, clientv3.OpPut(k, string(op.Value)))
		}
		// Every batch checks the mark is still absent: two pushes at once
		// cannot both finish.
		r, err := cli.Txn(ctx).If(owner, absent).Then(puts...).Commit()
		if err != nil {
			return fmt.Errorf("%w: %d of %d keys written, nothing usable yet (run it again): %w", ErrUnreachable, i, len(ops), err)
		}
		if !r.Succeeded {
			return fmt.Errorf("etcd prefix %s: the database appeared, or this push lost its lock, while pushing: %w", lay.prefix, store.ErrExists)
		}
		if progress != nil {
			progress(i+len(batch), len(ops))
		}
	}
	r, err := cli.Txn(ctx).If(owner, absent).Then(clientv3.OpPut(lay.mark(), cfg.Node)).Commit()
	if err != nil {
		return fmt.Errorf("%w: all keys written but not the mark (run it again): %w", ErrUnreachable, err)
	}
	if !r.Succeeded {
		return fmt.Errorf("etcd prefix %s: the database appeared, or this push lost its lock, while pushing: %w", lay.prefix, store.ErrExists)
	}
	return nil
}

// Pull reads the whole database under cfg's prefix at one revision.
func Pull(ctx context.Context, cfg Config) ([]store.Op, int64, error) {
	cfg.defaults()
	lay := newLayout(cfg.Prefix)
	cli, err := Client(cfg)
	if err != nil {
		return nil, 0, err
	}
	defer cli.Close()
	s := &Store{cfg: cfg, lay: lay, cli: cli}
	snap, err := s.readAll(ctx)
	if err != nil {
		return nil, 0, err
	}
	return snap.ops, snap.rev, nil
}
