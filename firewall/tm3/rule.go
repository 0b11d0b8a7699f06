package tm3

import (
	"errors"
	"strings"
)

// token is one word of a rule line; quoted words are never options.
type token struct {
	s      string
	quoted bool
}

var errQuote = errors.New("unbalanced quote")

// tokenize splits a rule line the way iptables-restore does: on blanks,
// with "..." and '...' grouping words and a backslash escaping the next
// character inside quotes.
func tokenize(line string) ([]token, error) {
	var toks []token
	var cur strings.Builder
	inWord, quoted := false, false
	var q byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case q != 0:
			switch {
			case c == '\\' && i+1 < len(line) && (line[i+1] == q || line[i+1] == '\\'):
				i++
				cur.WriteByte(line[i])
			case c == q:
				q = 0
			default:
				cur.WriteByte(c)
			}
		case c == ' ' || c == '\t':
			if inWord {
				toks = append(toks, token{cur.String(), quoted})
				cur.Reset()
				inWord, quoted = false, false
			}
		case c == '"' || c == '\'':
			q, inWord, quoted = c, true, true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if q != 0 {
		return nil, errQuote
	}
	if inWord {
		toks = append(toks, token{cur.String(), quoted})
	}
	return toks, nil
}

// option is one option of a rule with its arguments.
type option struct {
	name string // canonical, see optionNames
	raw  string // as written
	args []string
	neg  bool
}

// optionNames maps the spellings iptables accepts to one name.
var optionNames = map[string]string{
	"-A": "append", "--append": "append",
	"-I": "insert", "--insert": "insert",
	"-s": "source", "--source": "source", "--src": "source",
	"-d": "destination", "--destination": "destination", "--dst": "destination",
	"-p": "protocol", "--protocol": "protocol",
	"-i": "in-interface", "--in-interface": "in-interface",
	"-o": "out-interface", "--out-interface": "out-interface",
	"-j": "jump", "--jump": "jump",
	"-g": "goto", "--goto": "goto",
	"-m": "match", "--match": "match",
	"-f": "fragment", "--fragment": "fragment",
	"-c": "set-counters", "--set-counters": "set-counters",
	"--dport": "dport", "--destination-port": "dport",
	"--sport": "sport", "--source-port": "sport",
	"--dports": "dports", "--destination-ports": "dports",
	"--sports": "sports", "--source-ports": "sports",
	"--ports":   "ports",
	"--state":   "state",
	"--ctstate": "ctstate",
	"--comment": "comment",
	"--syn":     "syn",
}

// parseOptions groups tokens into options: an option is an unquoted word
// starting with '-', its arguments are the words up to the next option.
// "!" before an option (or, in the old syntax, right after its name)
// negates it. "--opt=value" is split like getopt does.
func parseOptions(toks []token) ([]option, error) {
	var opts []option
	neg := false
	for _, t := range toks {
		switch {
		case !t.quoted && t.s == "!":
			if n := len(opts); n > 0 && len(opts[n-1].args) == 0 && !neg {
				opts[n-1].neg = true // "-s ! 1.2.3.4"
			} else {
				neg = true
			}
		case !t.quoted && len(t.s) > 1 && t.s[0] == '-':
			raw, val, hasVal := t.s, "", false
			if strings.HasPrefix(raw, "--") {
				raw, val, hasVal = strings.Cut(raw, "=")
			}
			name, ok := optionNames[raw]
			if !ok {
				name = raw // unknown: kept, refused later unless irrelevant
			}
			o := option{name: name, raw: raw, neg: neg}
			if hasVal {
				o.args = append(o.args, val)
			}
			opts = append(opts, o)
			neg = false
		default:
			if len(opts) == 0 {
				return nil, errors.New("a word before any option: " + quote(t.s))
			}
			opts[len(opts)-1].args = append(opts[len(opts)-1].args, t.s)
		}
	}
	if neg {
		return nil, errors.New("a trailing \"!\"")
	}
	return opts, nil
}

// stripCounters removes the "[packets:bytes]" prefix iptables-save -c
// writes before a rule.
func stripCounters(line string) string {
	if !strings.HasPrefix(line, "[") {
		return line
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return line
	}
	inner := line[1:end]
	a, b, ok := strings.Cut(inner, ":")
	if !ok || a == "" || b == "" || strings.Trim(a+b, "0123456789") != "" {
		return line
	}
	return strings.TrimLeft(line[end+1:], " \t")
}
