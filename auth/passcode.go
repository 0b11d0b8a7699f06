package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id costs.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8
}

// DefaultParams is one of OWASP's equivalent argon2id baselines: 7 MiB
// and 5 passes cost an attacker as much as 19 MiB and 2, but hold less
// memory per check, which matters when a crowd of callers queues on a
// small PBX. Two lanes (p=2) split the same memory and passes over two
// cores, so one check takes about half the wall time on a two-core PBX
// while an attacker's cost per guess (memory x passes) is unchanged.
// Short numeric passcodes fall to an offline search whatever the cost,
// so a higher one would buy little against a stolen database (the store
// guards the hashes for that reason); the door checks one hash per try.
var DefaultParams = Params{Memory: 7168, Time: 5, Threads: 2}

// Bounds on argon2id costs. They apply to hashes read back from the store
// as well as to new ones: the costs travel inside the hash string, so
// without a ceiling one tampered record could make every call allocate
// gigabytes or spin for minutes.
const (
	minMemoryKiB = 1024
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 10
	maxThreads   = 16
)

const (
	minPasscodeDigits = 4
	maxPasscodeDigits = 20

	saltLen = 16
	keyLen  = 32
	// Hashes made by another argon2 tool may carry other salt lengths;
	// RFC 9106 asks for at least 8 bytes.
	minSaltLen = 8
	maxSaltLen = 64
	// Longer than any hash within the bounds above, short enough that a
	// hostile record costs nothing to refuse.
	maxPHCLen = 256
)

// ErrMalformedHash is wrapped by every error about a stored passcode hash
// that cannot be read or carries costs outside the accepted bounds.
var ErrMalformedHash = errors.New("malformed passcode hash")

// phcEncoding is the PHC string format's base64. Strict refuses non-zero
// padding bits, so every hash has exactly one spelling and an edited one
// cannot decode to the same bytes.
var phcEncoding = base64.RawStdEncoding.Strict()

// Validate checks the costs against the bounds Verify enforces, so that a
// hash this package makes is always one it will read back.
func (p Params) Validate() error {
	switch {
	case p.Memory < minMemoryKiB || p.Memory > maxMemoryKiB:
		return invalid("argon2 memory %d KiB: want %d-%d KiB", p.Memory, minMemoryKiB, maxMemoryKiB)
	case p.Time < 1 || p.Time > maxTime:
		return invalid("argon2 time %d: want 1-%d passes", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return invalid("argon2 threads %d: want 1-%d", p.Threads, maxThreads)
	}
	return nil
}

// ValidatePasscode accepts 4-20 digits 0-9. '*' and '#' are refused
// because the dialplan uses them to end or correct keyed input.
//
// Errors go to logs and terminals, so they describe the length and the
// kind of fault, never the characters given.
func ValidatePasscode(code string) error {
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return invalid("passcode of %d characters: only the digits 0-9 are allowed", utf8.RuneCountInString(code))
		}
	}
	if n := len(code); n < minPasscodeDigits || n > maxPasscodeDigits {
		return invalid("passcode of %d digits: want %d-%d digits", n, minPasscodeDigits, maxPasscodeDigits)
	}
	return nil
}

// HashPasscode returns the argon2id PHC string for code with a fresh
// random salt:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
func HashPasscode(code string, p Params) (string, error) {
	if err := ValidatePasscode(code); err != nil {
		return "", err
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	// Since Go 1.24, Read never returns an error: it crashes the program
	// rather than hand back predictable bytes.
	rand.Read(salt)
	key := argon2.IDKey([]byte(code), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		phcEncoding.EncodeToString(salt), phcEncoding.EncodeToString(key)), nil
}

// VerifyPasscode reports whether code is the passcode phc was made from.
// The error (wrapping ErrMalformedHash) is about phc alone; a code that is
// not a valid passcode simply does not match.
func VerifyPasscode(code, phc string) (bool, error) {
	h, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if ValidatePasscode(code) != nil {
		// No valid hash is made from an invalid passcode, and skipping
		// the work reveals only the shape of what the caller keyed.
		return false, nil
	}
	key := argon2.IDKey([]byte(code), h.salt, h.params.Time, h.params.Memory, h.params.Threads, keyLen)
	return subtle.ConstantTimeCompare(key, h.key) == 1, nil
}

type phcHash struct {
	params    Params
	salt, key []byte
}

// parsePHC reads an argon2id PHC string. Its errors never quote the
// string: a hash of a short numeric passcode is as sensitive as the
// passcode itself.
func parsePHC(s string) (phcHash, error) {
	bad := func(format string, args ...any) (phcHash, error) {
		return phcHash{}, fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return bad("empty (no passcode set)")
	}
	if len(s) > maxPHCLen {
		return bad("%d bytes, longer than any accepted argon2id hash", len(s))
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<key>")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm is not argon2id")
	}
	if parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return bad("version is not %d", argon2.Version)
	}
	p, err := parsePHCParams(parts[3])
	if err != nil {
		return phcHash{}, fmt.Errorf("%w: %w", ErrMalformedHash, err)
	}
	salt, err := phcEncoding.DecodeString(parts[4])
	if err != nil {
		return bad("salt is not unpadded base64")
	}
	if len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return bad("salt of %d bytes: want %d-%d", len(salt), minSaltLen, maxSaltLen)
	}
	key, err := phcEncoding.DecodeString(parts[5])
	if err != nil {
		return bad("key is not unpadded base64")
	}
	if len(key) != keyLen {
		return bad("key of %d bytes: want %d", len(key), keyLen)
	}
	return phcHash{params: p, salt: salt, key: key}, nil
}

// parsePHCParams reads "m=19456,t=2,p=1": exactly these three, in the
// order argon2's reference implementation writes them.
func parsePHCParams(s string) (Params, error) {
	fields := strings.Split(s, ",")
	names := []string{"m", "t", "p"}
	bits := []int{32, 32, 8}
	var v [3]uint64
	if len(fields) != len(names) {
		return Params{}, errors.New("parameters: want m=<KiB>,t=<passes>,p=<threads>")
	}
	for i, f := range fields {
		num, ok := strings.CutPrefix(f, names[i]+"=")
		n, err := strconv.ParseUint(num, 10, bits[i])
		if !ok || err != nil {
			return Params{}, fmt.Errorf("parameter %s: want %s=<number>", names[i], names[i])
		}
		v[i] = n
	}
	p := Params{Memory: uint32(v[0]), Time: uint32(v[1]), Threads: uint8(v[2])}
	return p, p.Validate()
}

// RandomPasscode returns a passcode of the given number of digits, each
// drawn uniformly from 0-9.
func RandomPasscode(digits int) (string, error) {
	if digits < minPasscodeDigits || digits > maxPasscodeDigits {
		return "", invalid("passcode length %d: want %d-%d digits", digits, minPasscodeDigits, maxPasscodeDigits)
	}
	return randomDigits(rand.Reader, digits)
}

// randomDigits draws n decimal digits from r. A byte maps to a digit by
// its remainder mod 10, and bytes 250-255 are rejected: counting them
// would make 0-5 one part in 25 likelier than 6-9.
func randomDigits(r io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	// Reading a little more than needed means one read nearly always
	// suffices (6 bytes in 256 are rejected).
	buf := make([]byte, n+n/4+4)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random passcode: %w", err)
		}
		for _, b := range buf {
			if b < 250 && len(out) < n {
				out = append(out, '0'+b%10)
			}
		}
	}
	return string(out), nil
}
