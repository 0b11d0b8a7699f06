package etcdstore

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/dialgate/dialgate/store"
)

// The layout under the prefix P (which ends in "/"):
//
//	P b/<bucket>/<key>   a record or index key, value as in bbolt
//	P s/<bucket>         the bucket's sequence, 8 bytes big-endian
//	P mark               written by every commit (value: the node); a
//	                     commit is accepted only if mark has not changed
//	                     since the revision it ran on. Its absence means
//	                     no complete database: a migration writes it last.
//
// Keys are bbolt's keys unchanged, so etcd's byte order is bbolt's and a
// range read of P b/<bucket>/ is the bucket in order.
type layout struct{ prefix string }

func newLayout(prefix string) layout {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return layout{prefix}
}

func (l layout) mark() string { return l.prefix + "mark" }

func (l layout) key(op store.Op) (string, error) {
	if op.Bucket == "" || strings.Contains(op.Bucket, "/") {
		return "", fmt.Errorf("bucket name %q cannot be stored in etcd", op.Bucket)
	}
	if op.Seq {
		return l.prefix + "s/" + op.Bucket, nil
	}
	return l.prefix + "b/" + op.Bucket + "/" + string(op.Key), nil
}

// op turns a key and value read from etcd back into a store operation;
// ok is false for the mark and for keys that are not dialgate's.
func (l layout) op(key, value []byte, deleted bool) (op store.Op, ok bool) {
	rest, found := bytes.CutPrefix(key, []byte(l.prefix))
	if !found {
		return op, false
	}
	switch {
	case bytes.HasPrefix(rest, []byte("b/")):
		bucket, k, found := bytes.Cut(rest[2:], []byte("/"))
		if !found || len(bucket) == 0 {
			return op, false
		}
		op = store.Op{Bucket: string(bucket), Key: bytes.Clone(k), Delete: deleted}
		if !deleted {
			op.Value = bytes.Clone(value)
		}
		return op, true
	case bytes.HasPrefix(rest, []byte("s/")):
		if len(rest) == 2 {
			return op, false
		}
		op = store.Op{Bucket: string(rest[2:]), Seq: true, Value: bytes.Clone(value)}
		if deleted {
			op.Value = make([]byte, 8) // a sequence is never deleted; read as 0
		}
		return op, true
	}
	return op, false
}
