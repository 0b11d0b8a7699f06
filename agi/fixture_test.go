package agi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The testdata/*.raw files are byte recordings of FastAGI connections to a
// real Asterisk 20.20.1 (copied from shared/fixtures/asterisk-20/agi). Each
// recv() or send() of the recording harness is one chunk:
//
//	"\n=== AST->AGI 412 bytes ===\n" followed by exactly 412 bytes
//
// AST->AGI is what Asterisk sent to the FastAGI server, AGI->AST what the
// server (a scripted peer) sent back.

type chunk struct {
	fromAsterisk bool
	data         []byte
}

func (c chunk) String() string {
	dir := "AGI->AST"
	if c.fromAsterisk {
		dir = "AST->AGI"
	}
	return fmt.Sprintf("%s %q", dir, c.data)
}

func parseRaw(b []byte) ([]chunk, error) {
	var chunks []chunk
	for off := 0; off < len(b); {
		rest := b[off:]
		if !bytes.HasPrefix(rest, []byte("\n=== ")) {
			return nil, fmt.Errorf("offset %d: want chunk header, have %.20q", off, rest)
		}
		end := bytes.Index(rest, []byte(" ===\n"))
		if end < 0 {
			return nil, fmt.Errorf("offset %d: unterminated chunk header", off)
		}
		var dir string
		var n int
		hdr := string(rest[len("\n=== "):end])
		if _, err := fmt.Sscanf(hdr, "%s %d bytes", &dir, &n); err != nil {
			return nil, fmt.Errorf("offset %d: header %q: %v", off, hdr, err)
		}
		if dir != "AST->AGI" && dir != "AGI->AST" {
			return nil, fmt.Errorf("offset %d: unknown direction %q", off, dir)
		}
		start := end + len(" ===\n")
		if n < 0 || start+n > len(rest) {
			return nil, fmt.Errorf("offset %d: chunk of %d bytes overruns the file", off, n)
		}
		chunks = append(chunks, chunk{fromAsterisk: dir == "AST->AGI", data: rest[start : start+n]})
		off += start + n
	}
	return chunks, nil
}

// rawFixtures returns the recordings by file name.
func rawFixtures(tb testing.TB) map[string][]chunk {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.raw"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no testdata/*.raw recordings (err %v)", err)
	}
	m := make(map[string][]chunk)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		chunks, err := parseRaw(b)
		if err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		m[filepath.Base(p)] = chunks
	}
	return m
}

// envBytes returns the env block of a recording: the Asterisk chunks up
// to and including the one that ends with the empty line.
func envBytes(chunks []chunk) []byte {
	var b []byte
	for _, c := range chunks {
		if !c.fromAsterisk {
			break
		}
		b = append(b, c.data...)
		if bytes.HasSuffix(b, []byte("\n\n")) {
			break
		}
	}
	return b
}

// replyStreams returns, for each run of consecutive Asterisk chunks after
// the env block, their concatenation: one or more replies.
func replyStreams(chunks []chunk) [][]byte {
	var out [][]byte
	var cur []byte
	inEnv := true
	var env []byte
	for _, c := range chunks {
		if inEnv {
			env = append(env, c.data...)
			if bytes.HasSuffix(env, []byte("\n\n")) {
				inEnv = false
			}
			continue
		}
		if c.fromAsterisk {
			cur = append(cur, c.data...)
			continue
		}
		if cur != nil {
			out = append(out, cur)
			cur = nil
		}
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}

func TestParseRaw(t *testing.T) {
	for name, chunks := range rawFixtures(t) {
		if len(chunks) < 2 || !chunks[0].fromAsterisk {
			t.Errorf("%s: %d chunks, first from Asterisk %v", name, len(chunks), len(chunks) > 0 && chunks[0].fromAsterisk)
		}
	}
	if _, err := parseRaw([]byte("\n=== AST->AGI 99 bytes ===\nshort")); err == nil {
		t.Error("overrun chunk accepted")
	}
	if _, err := parseRaw([]byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}
