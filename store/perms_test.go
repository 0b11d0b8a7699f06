package store

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestPermSetFormatting(t *testing.T) {
	tests := []struct {
		name  string
		set   PermSet
		codes []int
		str   string
		json  string
	}{
		{"zero value", 0, nil, "", "[]"},
		{"all", NewPermSet(PermAll), []int{0}, "0", "[0]"},
		{"several", NewPermSet(8, 1, 2), []int{1, 2, 8}, "1,2,8", "[1,2,8]"},
		{"duplicates collapse", NewPermSet(4, 4, 4), []int{4}, "4", "[4]"},
		{"bounds", NewPermSet(0, 9), []int{0, 9}, "0,9", "[0,9]"},
		{"every code", NewPermSet(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "0,1,2,3,4,5,6,7,8,9", "[0,1,2,3,4,5,6,7,8,9]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Codes(); !slices.Equal(got, tt.codes) {
				t.Errorf("Codes() = %v, want %v", got, tt.codes)
			}
			if got := tt.set.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.set.IsEmpty(); got != (len(tt.codes) == 0) {
				t.Errorf("IsEmpty() = %v", got)
			}
			data, err := json.Marshal(tt.set)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if string(data) != tt.json {
				t.Errorf("Marshal = %s, want %s", data, tt.json)
			}
			var back PermSet
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("Unmarshal(%s): %v", data, err)
			}
			if back != tt.set {
				t.Errorf("round trip = %v, want %v", back, tt.set)
			}
		})
	}
}

func TestPermSetHas(t *testing.T) {
	p := NewPermSet(0, 3)
	for code, want := range map[int]bool{-1: false, 0: true, 1: false, 3: true, 9: false, 10: false, 16: false, 100: false} {
		if got := p.Has(code); got != want {
			t.Errorf("Has(%d) = %v, want %v", code, got, want)
		}
	}
	// "All" is a member like any other, not an expansion.
	if NewPermSet(PermAll).Has(5) {
		t.Error("NewPermSet(0).Has(5) = true; expanding code 0 is the firewall's job")
	}
}

func TestNewPermSetDropsOutOfRange(t *testing.T) {
	if got := NewPermSet(-1, 10, 16, 64, 2); got != NewPermSet(2) {
		t.Errorf("NewPermSet(-1, 10, 16, 64, 2) = %q, want %q", got, "2")
	}
}

func TestPermSetUnmarshalRejects(t *testing.T) {
	for _, in := range []string{`[10]`, `[-1]`, `[1,2,99]`, `["1"]`, `"1,2"`, `{}`, `[1.5]`} {
		t.Run(in, func(t *testing.T) {
			p := NewPermSet(7)
			err := json.Unmarshal([]byte(in), &p)
			if err == nil {
				t.Fatalf("Unmarshal(%s) = %v, want error", in, p)
			}
			if p != NewPermSet(7) {
				t.Errorf("failed Unmarshal changed the set to %v", p)
			}
		})
	}
	var p PermSet
	err := json.Unmarshal([]byte(`[3,10]`), &p)
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("out-of-range error %v does not wrap ErrInvalid", err)
	}
	if want := "permission code 10 out of range 0-9"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestPermSetUnmarshalNullKeepsValue(t *testing.T) {
	p := NewPermSet(1)
	if err := json.Unmarshal([]byte(`null`), &p); err != nil {
		t.Fatal(err)
	}
	if p != NewPermSet(1) {
		t.Errorf("null changed the set to %v", p)
	}
}

func TestPermSetMarshalRejectsStrayBits(t *testing.T) {
	_, err := json.Marshal(PermSet(1<<12 | 1<<1))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Marshal of bit 12 = %v, want ErrInvalid", err)
	}
}
