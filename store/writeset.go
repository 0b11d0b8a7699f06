package store

// writeSet is what one transaction of a replica wrote, in the order it
// wrote it, with later writes of a key replacing earlier ones: the
// shared store receives the transaction's outcome, not its history.
type writeSet struct {
	ops []Op
	// at is the index in ops of each bucket/key already written.
	at map[string]int
}

// Op is one write of a transaction on a replica, or one change the
// shared store reports to it: a key put or deleted in a bucket, or the
// bucket's sequence set (Seq). Value is nil for a delete.
type Op struct {
	Bucket string
	Key    []byte
	Value  []byte
	Delete bool
	// Seq marks the bucket's sequence counter (Sequence in Value, 8 bytes
	// big-endian); Key is nil.
	Seq bool
}

func (w *writeSet) add(op Op) {
	if w == nil {
		return
	}
	id := op.Bucket + "\x00" + string(op.Key)
	if op.Seq {
		id = op.Bucket + "\x01"
	}
	if w.at == nil {
		w.at = make(map[string]int)
	}
	if i, ok := w.at[id]; ok {
		w.ops[i] = op
		return
	}
	w.at[id] = len(w.ops)
	w.ops = append(w.ops, op)
}

// Keys and values are copied: bbolt's are valid only inside the
// transaction and callers may reuse their slices.
func (w *writeSet) put(b string, key, value []byte) {
	w.add(Op{Bucket: b, Key: clone(key), Value: clone(value)})
}

func (w *writeSet) del(b string, key []byte) {
	w.add(Op{Bucket: b, Key: clone(key), Delete: true})
}

func (w *writeSet) seq(b string, n uint64) {
	w.add(Op{Bucket: b, Seq: true, Value: seqKey(n)})
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
