package auth

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// testParams keeps each hash around a millisecond; only
// TestHashDefaultParams pays for the real costs.
var testParams = Params{Memory: 1024, Time: 1, Threads: 1}

func mustHash(t testing.TB, code string) string {
	t.Helper()
	h, err := HashPasscode(code, testParams)
	if err != nil {
		t.Fatalf("HashPasscode: %v", err)
	}
	return h
}

func TestParamsValidate(t *testing.T) {
	cases := []struct {
		p     Params
		field string // "" = valid
	}{
		{DefaultParams, ""},
		{testParams, ""},
		{Params{Memory: 1 << 20, Time: 10, Threads: 16}, ""},
		{Params{Memory: 1023, Time: 1, Threads: 1}, "memory"},
		{Params{Memory: 1<<20 + 1, Time: 1, Threads: 1}, "memory"},
		{Params{Memory: 1024, Time: 0, Threads: 1}, "time"},
		{Params{Memory: 1024, Time: 11, Threads: 1}, "time"},
		{Params{Memory: 1024, Time: 1, Threads: 0}, "threads"},
		{Params{Memory: 1024, Time: 1, Threads: 17}, "threads"},
		{Params{}, "memory"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		if c.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", c.p, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: got %v, want ErrInvalid naming %s", c.p, err, c.field)
		}
	}
}

func TestValidatePasscode(t *testing.T) {
	cases := []struct {
		code string
		ok   bool
	}{
		{"0000", true},
		{"8675", true},
		{"01234567890123456789", true},
		{"", false},
		{"739", false},
		{"987654321098765432109", false}, // 21 digits
		{"73a9", false},
		{"abcd", false},
		{"7391*", false},
		{"#7391", false},
		{"73 91", false},
		{" 7391", false},
		{"7391\n", false},
		{"７３９１", false}, // full-width digits
	}
	for _, c := range cases {
		err := ValidatePasscode(c.code)
		if c.ok {
			if err != nil {
				t.Errorf("%q refused: %v", c.code, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: got %v, want ErrInvalid", c.code, err)
			continue
		}
		// No run of the code may reach the message: it is logged.
		for i := 0; i+3 <= len(c.code); i++ {
			if w := c.code[i : i+3]; strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q echoes %q", c.code, err, w)
			}
		}
	}
}

func TestHashVerifyRoundTrip(t *testing.T) {
	for _, code := range []string{"0000", "4711", "01234567890123456789"} {
		h := mustHash(t, code)
		if want := "$argon2id$v=19$m=1024,t=1,p=1$"; !strings.HasPrefix(h, want) {
			t.Errorf("hash %q does not start %q", h, want)
		}
		if strings.Contains(h, code) {
			t.Errorf("hash %q contains the passcode", h)
		}
		if ok, err := VerifyPasscode(code, h); !ok || err != nil {
			t.Errorf("%q: right code: %v, %v", code, ok, err)
		}
		for _, wrong := range []string{code[:len(code)-1] + "9", code + "1", code[1:], "", "abcd", "0000*"} {
			if wrong == code {
				continue
			}
			if ok, err := VerifyPasscode(wrong, h); ok || err != nil {
				t.Errorf("%q: wrong code %q: %v, %v", code, wrong, ok, err)
			}
		}
	}
}

func TestHashDefaultParams(t *testing.T) {
	h, err := HashPasscode("2468", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=7168,t=5,p=2$"; !strings.HasPrefix(h, want) {
		t.Errorf("hash %q does not start %q", h, want)
	}
	// 16-byte salt and 32-byte key in unpadded base64: 22 and 43 characters.
	parts := strings.Split(h, "$")
	if len(parts) != 6 || len(parts[4]) != 22 || len(parts[5]) != 43 {
		t.Errorf("hash %q: want a 22-character salt and a 43-character key", h)
	}
	if ok, err := VerifyPasscode("2468", h); !ok || err != nil {
		t.Errorf("verify: %v, %v", ok, err)
	}
}

func TestHashIsSalted(t *testing.T) {
	a, b := mustHash(t, "1357"), mustHash(t, "1357")
	if a == b {
		t.Fatalf("two hashes of one passcode are equal: %q", a)
	}
	for _, h := range []string{a, b} {
		if ok, err := VerifyPasscode("1357", h); !ok || err != nil {
			t.Errorf("verify %q: %v, %v", h, ok, err)
		}
	}
}

func TestHashRefuses(t *testing.T) {
	cases := []struct {
		code string
		p    Params
	}{
		{"123", testParams},
		{"12a4", testParams},
		{"1234", Params{}},
		{"1234", Params{Memory: 1024, Time: 11, Threads: 1}},
	}
	for _, c := range cases {
		h, err := HashPasscode(c.code, c.p)
		if h != "" || !errors.Is(err, ErrInvalid) {
			t.Errorf("HashPasscode(%q, %+v) = %q, %v; want ErrInvalid", c.code, c.p, h, err)
		}
	}
}

func TestVerifyTampered(t *testing.T) {
	const code = "5150"
	good := mustHash(t, code)
	parts := strings.Split(good, "$") // "", alg, version, params, salt, key
	salt, key := parts[4], parts[5]
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	// flipPad changes only the 2 padding bits of the key's last
	// character, which a lax decoder would ignore.
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(b64, key[len(key)-1])
	flipPad := key[:len(key)-1] + string(b64[last^1])
	flipData := string(b64[(strings.IndexByte(b64, key[0])+1)%64]) + key[1:]

	const (
		mismatch = "mismatch" // no error, no match
		refused  = "refused"  // ErrMalformedHash
	)
	cases := []struct {
		name, phc, want string
	}{
		{"more memory", with(3, "m=2048,t=1,p=1"), mismatch},
		{"more passes", with(3, "m=1024,t=2,p=1"), mismatch},
		{"more threads", with(3, "m=1024,t=1,p=2"), mismatch},
		{"other salt", with(4, "AAAAAAAAAAAAAAAAAAAAAA"), mismatch},
		{"key changed", with(5, flipData), mismatch},
		{"key padding bits changed", with(5, flipPad), refused},
		{"memory over 1 GiB", with(3, "m=1048577,t=1,p=1"), refused},
		{"memory overflows uint32", with(3, "m=4294967296,t=1,p=1"), refused},
		{"memory too small", with(3, "m=8,t=1,p=1"), refused},
		{"negative memory", with(3, "m=-1,t=1,p=1"), refused},
		{"11 passes", with(3, "m=1024,t=11,p=1"), refused},
		{"0 passes", with(3, "m=1024,t=0,p=1"), refused},
		{"17 threads", with(3, "m=1024,t=1,p=17"), refused},
		{"256 threads", with(3, "m=1024,t=1,p=256"), refused},
		{"parameters reordered", with(3, "t=1,m=1024,p=1"), refused},
		{"extra parameter", with(3, "m=1024,t=1,p=1,keyid=x"), refused},
		{"missing parameter", with(3, "m=1024,t=1"), refused},
		{"argon2i", with(1, "argon2i"), refused},
		{"version 16", with(2, "v=16"), refused},
		{"salt not base64", with(4, "!!!!!!!!!!!!!!!!!!!!!!"), refused},
		{"salt padded", with(4, salt+"=="), refused},
		{"salt too short", with(4, "AAAA"), refused},
		{"key truncated", good[:len(good)-5], refused},
		{"key too long", with(5, key+"AAAA"), refused},
		{"key missing", strings.Join(parts[:5], "$"), refused},
		{"extra field", good + "$AAAA", refused},
		{"no leading $", good[1:], refused},
		{"header only", "$argon2id$v=19", refused},
		{"empty", "", refused},
		{"huge", good + strings.Repeat("A", 10000), refused},
		{"bcrypt", "$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", refused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, err := VerifyPasscode(code, c.phc)
			if ok {
				t.Fatalf("tampered hash verified")
			}
			switch c.want {
			case mismatch:
				if err != nil {
					t.Errorf("got %v, want a plain mismatch", err)
				}
			case refused:
				if !errors.Is(err, ErrMalformedHash) {
					t.Fatalf("got %v, want ErrMalformedHash", err)
				}
				// The hash is as sensitive as the passcode: errors
				// must not carry it.
				if msg := err.Error(); strings.Contains(msg, salt) || strings.Contains(msg, key[:20]) {
					t.Errorf("error %q quotes the hash", msg)
				}
			}
		})
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add(mustHash(f, "1234"))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$AAAAAAAAAAA$AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("error %v does not wrap ErrMalformedHash", err)
			}
			return
		}
		// Whatever parses must be safe to hand to argon2.
		if err := h.params.Validate(); err != nil {
			t.Fatalf("accepted out-of-bounds costs: %v", err)
		}
		if len(h.key) != keyLen || len(h.salt) < minSaltLen || len(h.salt) > maxSaltLen {
			t.Fatalf("accepted key of %d bytes, salt of %d", len(h.key), len(h.salt))
		}
	})
}

func TestRandomPasscode(t *testing.T) {
	for _, n := range []int{4, 6, 20} {
		code, err := RandomPasscode(n)
		if err != nil {
			t.Fatalf("RandomPasscode(%d): %v", n, err)
		}
		if len(code) != n || ValidatePasscode(code) != nil {
			t.Errorf("RandomPasscode(%d) = %d characters, valid: %v", n, len(code), ValidatePasscode(code))
		}
	}
	for _, n := range []int{-1, 0, 3, 21} {
		if code, err := RandomPasscode(n); code != "" || !errors.Is(err, ErrInvalid) {
			t.Errorf("RandomPasscode(%d) = %q, %v; want ErrInvalid", n, code, err)
		}
	}
}

func TestRandomPasscodeUniform(t *testing.T) {
	const draws, digits = 10000, 4
	var count [10]int
	for range draws {
		code, err := RandomPasscode(digits)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []byte(code) {
			count[c-'0']++
		}
	}
	// Expected 10% each; the 8-12% band is over 10 standard deviations
	// wide here, so only a real bias fails it.
	for d, n := range count {
		if share := float64(n) / (draws * digits); share < 0.08 || share > 0.12 {
			t.Errorf("digit %d: %.2f%% of draws, want 8-12%%", d, 100*share)
		}
	}
}

func TestRandomDigitsRejectsBiasedBytes(t *testing.T) {
	// n=4 reads 9 bytes at a time. Bytes 250-255 would favour 0-5 and
	// must be skipped; 249 is the largest usable byte.
	src := []byte{
		250, 251, 252, 253, 254, 255, 249, 0, 19, // "909"
		255, 123, 7, 8, 9, 10, 11, 12, 13, // "3", then enough
	}
	got, err := randomDigits(bytes.NewReader(src), 4)
	if err != nil || got != "9093" {
		t.Errorf("randomDigits = %q, %v; want \"9093\"", got, err)
	}
	// A source that runs dry is an error, not a short passcode.
	got, err = randomDigits(bytes.NewReader([]byte{255, 255, 255, 255, 255, 255, 255, 255, 255}), 4)
	if got != "" || !errors.Is(err, io.EOF) {
		t.Errorf("exhausted source: %q, %v; want io.EOF", got, err)
	}
}
