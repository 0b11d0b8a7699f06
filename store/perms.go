package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Permission codes are the service numbers of the firewall model: 1 SIP UDP,
// 2 SIP TCP/TLS, 3 IAX2, 4 Web, 5 Webmin, 6 FTP, 7 TFTP, 8 SSH, 9 FOP.
const (
	// PermAll is the code that stands for every service.
	PermAll = 0
	// MaxPermCode is the highest valid permission code.
	MaxPermCode = 9
)

// validPerms has a bit for every valid code; anything outside it would
// encode to a record that could never be read back.
const validPerms PermSet = 1<<(MaxPermCode+1) - 1

// PermSet is a set of permission codes 0-9; bit i is code i.
//
// The zero value is the empty set. On an Entry the empty set means "inherit
// the account's permissions"; on an Account or Grant it means "no services".
// Code 0 (PermAll) is kept as a plain member: Has(3) reports false for a set
// holding only 0, because expanding "all" into ports is the firewall's job.
//
// A PermSet is JSON-encoded as an ascending list of codes, e.g. [1,2,8].
type PermSet uint16

// NewPermSet returns the set of the given codes. It is meant for codes the
// caller has already validated (constants, or input checked against
// MaxPermCode): codes outside 0-9 are dropped rather than reported, so
// parse untrusted input with the JSON decoder or check it first.
func NewPermSet(codes ...int) PermSet {
	var p PermSet
	for _, c := range codes {
		if c >= 0 && c <= MaxPermCode {
			p |= 1 << c
		}
	}
	return p
}

// Has reports whether code is in the set.
func (p PermSet) Has(code int) bool {
	return code >= 0 && code < 16 && p&(1<<code) != 0
}

// Codes returns the codes in the set in ascending order, or nil for the
// empty set. Bits above 9 (only possible by converting an integer directly)
// are listed too, so they show up in output instead of vanishing.
func (p PermSet) Codes() []int {
	var codes []int
	for c := 0; c < 16; c++ {
		if p&(1<<c) != 0 {
			codes = append(codes, c)
		}
	}
	return codes
}

// String returns the codes joined by commas ("1,2,8"), the form the CLI
// accepts; the empty set is "".
func (p PermSet) String() string {
	var b strings.Builder
	for i, c := range p.Codes() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}

// IsEmpty reports whether the set has no codes.
func (p PermSet) IsEmpty() bool { return p == 0 }

// valid reports an error for bits outside 0-9.
func (p PermSet) valid() error {
	if bad := p &^ validPerms; bad != 0 {
		return invalidf("permission codes %s out of range 0-%d", bad, MaxPermCode)
	}
	return nil
}

// MarshalJSON encodes the set as a list of codes; the empty set is [] so
// that readers never have to tell null from empty.
func (p PermSet) MarshalJSON() ([]byte, error) {
	if err := p.valid(); err != nil {
		return nil, err
	}
	codes := p.Codes()
	if codes == nil {
		codes = []int{}
	}
	return json.Marshal(codes)
}

// UnmarshalJSON decodes a list of codes, rejecting any outside 0-9 with an
// error that wraps ErrInvalid. Duplicates are harmless and collapse.
func (p *PermSet) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil // encoding/json convention: null leaves the value alone
	}
	var codes []int
	if err := json.Unmarshal(data, &codes); err != nil {
		return fmt.Errorf("permission codes: %w", err)
	}
	var set PermSet
	for _, c := range codes {
		if c < 0 || c > MaxPermCode {
			return invalidf("permission code %d out of range 0-%d", c, MaxPermCode)
		}
		set |= 1 << c
	}
	*p = set
	return nil
}
