package agi

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// fuzzMaxLine keeps fuzz inputs' lines short so the limits are exercised.
const fuzzMaxLine = 256

// allocBound is the most a parse of input may allocate: the reader's
// buffer, and for every line at most a few copies of it. Anything that
// grows with a number in the input rather than with its size (an
// agi_arg_999999999, a count) blows through it.
func allocBound(input []byte) uint64 {
	return 256<<10 + 64*uint64(len(input))
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

func FuzzReadReply(f *testing.F) {
	for _, chunks := range rawFixtures(f) {
		for _, s := range replyStreams(chunks) {
			f.Add(s)
		}
		for _, c := range chunks {
			if c.fromAsterisk {
				f.Add(c.data)
			}
		}
	}
	for _, s := range []string{
		"200 result= (timeout)\n",
		"200 result=1 (digit) digit=5 endpos=100\n",
		"100 result=0 Trying...\n200 result=0 Gosub complete\n",
		"503 result=-2 Memory allocation failure\n",
		"520 Invalid command syntax.  Proper usage not available.\n",
		"HANGUP\nHANGUP\n200 result=0\n",
		"200 result=1 ((((\n",
		"200 result=1 ()) a=b c\n",
		"520-\n520-\n520 x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var reps []Reply
		alloc := measure(func() {
			lr := newLineReader(bytes.NewReader(data), fuzzMaxLine)
			for range 64 {
				rep, _, err := readReply(lr)
				if err != nil {
					return
				}
				reps = append(reps, rep)
			}
		})
		if alloc > allocBound(data) {
			t.Errorf("%d-byte input allocated %d bytes", len(data), alloc)
		}
		for _, rep := range reps {
			if rep.Code < 0 || rep.Code > 999 {
				t.Errorf("code %d", rep.Code)
			}
			if n := len(rep.RawResult) + len(rep.Data); n > len(data) {
				t.Errorf("reply fields hold %d bytes of a %d-byte input", n, len(data))
			}
			if len(rep.Text) > len(data) || len(rep.Extra) > len(data)/2 {
				t.Errorf("reply larger than its input: %+v", rep)
			}
			if rep.Code == 200 && strings.Contains(rep.RawResult, " ") {
				t.Errorf("result %q holds a space", rep.RawResult)
			}
		}
	})
}

func FuzzReadEnv(f *testing.F) {
	for _, chunks := range rawFixtures(f) {
		env := envBytes(chunks)
		f.Add(env)
		f.Add(bytes.ReplaceAll(env, []byte("\n"), []byte("\r\n")))
	}
	f.Add([]byte("agi_arg_512: x\n\n"))
	f.Add([]byte("agi_arg_513: x\n\n"))
	f.Add([]byte("agi_network_script: a?b=%zz&c\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			e   Env
			err error
		)
		alloc := measure(func() {
			e, err = readEnv(newLineReader(bytes.NewReader(data), fuzzMaxLine))
		})
		if alloc > allocBound(data) {
			t.Errorf("%d-byte input allocated %d bytes", len(data), alloc)
		}
		if err != nil {
			return
		}
		if len(e.Args) > maxEnvLines || len(e.Raw) > maxEnvLines+1 {
			t.Errorf("%d args, %d keys", len(e.Args), len(e.Raw))
		}
		if p := e.Path(); !strings.HasPrefix(p, "/") || strings.Contains(p, "?") {
			t.Errorf("Path() = %q", p)
		}
		_ = e.Query()
	})
}
