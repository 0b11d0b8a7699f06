package ami

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The testdata/ami-*.txt files are transcripts of AMI sessions with a
// real Asterisk 20.20.1 (copied from shared/fixtures/asterisk-20). Each
// recv() or send() of the recording harness is one line:
//
//	[+  0.002s] AST->CLI b'Asterisk Call Manager/9.0.0\r\n'
//
// with the bytes as a Python bytes literal; "-- EOF" lines mark Asterisk
// closing the connection. The readable rendering that follows each
// session is ignored. A connection starts with the banner.

type chunk struct {
	fromAsterisk bool
	eof          bool // Asterisk closed the connection here
	data         []byte
}

func (c chunk) String() string {
	switch {
	case c.eof:
		return "EOF"
	case c.fromAsterisk:
		return fmt.Sprintf("AST->CLI %q", c.data)
	}
	return fmt.Sprintf("CLI->AST %q", c.data)
}

var chunkLine = regexp.MustCompile(`^\[\+\s*[0-9.]+s\] (AST->CLI|CLI->AST) (b'.*'|b".*")$`)

// parseTranscript returns the connections of a transcript, each a list of
// chunks starting with the banner.
func parseTranscript(b []byte) ([][]chunk, error) {
	var conns [][]chunk
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "[+") && strings.HasSuffix(line, "-- EOF (Asterisk closed the TCP connection)") {
			if len(conns) == 0 {
				return nil, fmt.Errorf("line %d: EOF before any connection", n)
			}
			conns[len(conns)-1] = append(conns[len(conns)-1], chunk{fromAsterisk: true, eof: true})
			continue
		}
		m := chunkLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		data, err := unquotePyBytes(m[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		c := chunk{fromAsterisk: m[1] == "AST->CLI", data: data}
		if c.fromAsterisk && bytes.HasPrefix(data, []byte(bannerPrefix)) {
			conns = append(conns, nil)
		}
		if len(conns) == 0 {
			return nil, fmt.Errorf("line %d: data before the first banner", n)
		}
		conns[len(conns)-1] = append(conns[len(conns)-1], c)
	}
	return conns, sc.Err()
}

// unquotePyBytes decodes a Python bytes literal as repr() writes it.
func unquotePyBytes(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != 'b' || (s[1] != '\'' && s[1] != '"') || s[len(s)-1] != s[1] {
		return nil, fmt.Errorf("not a bytes literal: %.20q", s)
	}
	s = s[2 : len(s)-1]
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(s) {
			return nil, fmt.Errorf("trailing backslash")
		}
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '\\', '\'', '"':
			out = append(out, s[i])
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad \\x escape: %v", err)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return out, nil
}

// transcripts returns the connections of every testdata transcript, by
// file name.
func transcripts(tb testing.TB) map[string][][]chunk {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "ami-*.txt"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no testdata/ami-*.txt transcripts (err %v)", err)
	}
	m := make(map[string][][]chunk)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		conns, err := parseTranscript(b)
		if err != nil {
			tb.Fatalf("%s: %v", p, err)
		}
		if len(conns) == 0 {
			tb.Fatalf("%s: no connections", p)
		}
		m[filepath.Base(p)] = conns
	}
	return m
}

// session returns connection i of a transcript.
func session(tb testing.TB, file string, i int) []chunk {
	tb.Helper()
	conns := transcripts(tb)[file]
	if i >= len(conns) {
		tb.Fatalf("%s has %d connections, want #%d", file, len(conns), i)
	}
	return conns[i]
}

// fromAsterisk concatenates what Asterisk sent on a connection.
func fromAsterisk(conn []chunk) []byte {
	var b []byte
	for _, c := range conn {
		if c.fromAsterisk {
			b = append(b, c.data...)
		}
	}
	return b
}

func TestParseTranscript(t *testing.T) {
	all := transcripts(t)
	if n := len(all["ami-session.txt"]); n != 5 {
		t.Errorf("ami-session.txt: %d connections, want 5", n)
	}
	for name, conns := range all {
		for i, conn := range conns {
			if !conn[len(conn)-1].eof {
				t.Errorf("%s #%d: does not end with Asterisk closing the connection", name, i)
			}
		}
	}
	for _, bad := range []string{`b'abc`, `'abc'`, `b'\q'`, `b'\x4'`, `b'a\'`} {
		if _, err := unquotePyBytes(bad); err == nil {
			t.Errorf("unquotePyBytes(%s) succeeded", bad)
		}
	}
	got, err := unquotePyBytes(`b"Output: No such command 'x'\r\n\x00\\"`)
	if err != nil || string(got) != "Output: No such command 'x'\r\n\x00\\" {
		t.Errorf("unquotePyBytes = %q, %v", got, err)
	}
}
