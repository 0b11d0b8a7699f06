package ami

import (
	"bytes"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// fuzzMaxMessage keeps fuzz inputs' messages small so the limit is
// exercised.
const fuzzMaxMessage = 1024

// allocBound is the most reading input may allocate: the reader's buffer,
// and per input byte a few copies plus the header and body slices (a
// 3-byte "a:\n" line is a 32-byte Header). Anything that grows with a
// number in the input rather than with its size blows through it.
func allocBound(input []byte) uint64 {
	return 64<<10 + 160*uint64(len(input))
}

// measure returns the bytes f allocated. Fuzz workers run one input at a
// time, so other goroutines add little noise.
func measure(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func FuzzReadMessage(f *testing.F) {
	for _, conns := range transcripts(f) {
		for _, conn := range conns {
			f.Add(fromAsterisk(conn))
			for _, c := range conn {
				if !c.eof {
					f.Add(c.data)
				}
			}
		}
	}
	for _, s := range []string{
		"Response: Follows\r\nPrivilege: Command\r\nActionID: 1\r\n\n\nout: put\nlast--END COMMAND--\r\n\r\n",
		"Response: Error\r\nActionID: 7\r\nMessage: Unable to retrieve endpoint bob\n\r\n\r\n",
		"Event: A\nKey:\nK2:v:w\n\n\n\nEvent: B\r\n\r\n",
		"Response: Follows\r\n\r\n--END COMMAND--\r\nX: y\r\n\r\n",
		": v\r\n\r\n",
		"\r\r\n\r\n",
		strings.Repeat("K: v\r\n", 300) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var msgs []Message
		alloc := measure(func() {
			r := newReader(bytes.NewReader(data), fuzzMaxMessage)
			for range 64 {
				m, err := r.readMessage()
				if err != nil {
					return
				}
				msgs = append(msgs, m)
			}
		})
		if alloc > allocBound(data) {
			t.Errorf("%d-byte input allocated %d bytes", len(data), alloc)
		}
		total := 0
		for _, m := range msgs {
			if len(m.Headers) == 0 {
				t.Errorf("empty message %#v", m)
			}
			for _, h := range m.Headers {
				if h.Key == "" || strings.ContainsAny(h.Key, ":\n") || strings.TrimSpace(h.Key) != h.Key {
					t.Errorf("bad key %q", h.Key)
				}
				if strings.Contains(h.Value, "\n") {
					t.Errorf("value %q holds a line break", h.Value)
				}
				total += len(h.Key) + len(h.Value)
			}
			for _, l := range m.Body {
				if strings.Contains(l, "\n") {
					t.Errorf("body line %q holds a line break", l)
				}
				total += len(l)
			}
			// What was read renders to something that reads back the
			// same.
			again, err := newReader(strings.NewReader(m.String()), 1<<20).readMessage()
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Errorf("round trip of %#v\ngave %#v, %v", m, again, err)
			}
		}
		if total > len(data) {
			t.Errorf("messages hold %d bytes of a %d-byte input", total, len(data))
		}
	})
}
