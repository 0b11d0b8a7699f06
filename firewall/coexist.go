package firewall

import (
	"fmt"
	"slices"
	"strings"
)

// This file judges what runs ahead of dialgate and names the other
// firewalls found beside it.
//
// An iptables ACCEPT ends the INPUT chain: a rule ahead of dialgate's
// jump that accepts a packet lets it past dialgate. A rule that can only
// drop, reject, return (from a chain of its own) or log cannot: fail2ban
// inserts `-j f2b-sshd` at INPUT 1, and f2b-sshd rejects banned addresses
// and returns. Such rules are harmless and stay where they are; a rule
// that can accept, directly or through the chains it jumps to, is drift,
// and the repair moves dialgate's jump in front of it.
//
// In nftables an accept only ends its own base chain; every other base
// chain at the hook still sees the packet, and a drop is final. Nothing in
// another table can let a packet past dialgate's chain, so whatever runs
// at an earlier priority is harmless.

// iptRule is one rule as `iptables -S` prints it, split into the
// arguments before its target and the target with its own.
type iptRule struct {
	text    string // the line, without "-A <chain> "
	target  string // after -j or -g; "" for a rule without one
	isGoto  bool
	matches []string
	targs   []string
}

func parseRule(text string) iptRule {
	r := iptRule{text: text}
	args := splitArgs(text)
	for i, a := range args {
		if (a == "-j" || a == "-g" || a == "--jump" || a == "--goto") && i+1 < len(args) {
			r.target, r.isGoto = args[i+1], a == "-g" || a == "--goto"
			r.matches, r.targs = args[:i], args[i+2:]
			return r
		}
	}
	r.matches = args
	return r
}

// splitArgs splits a line of `iptables -S` into arguments: iptables
// quotes an argument holding spaces with double quotes and escapes the
// quotes and backslashes inside.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted, in = !quoted, true
		case c == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// Targets that let the packet go on to the next rule whatever they do:
// they cannot admit it.
var nonTerminating = map[string]bool{
	"LOG": true, "NFLOG": true, "ULOG": true, "MARK": true, "CONNMARK": true, "CLASSIFY": true,
	"TRACE": true, "AUDIT": true, "TCPMSS": true, "TOS": true, "DSCP": true, "ECN": true, "TTL": true,
	"HL": true, "CHECKSUM": true, "IDLETIMER": true, "LED": true, "RATEEST": true, "SECMARK": true,
	"CONNSECMARK": true, "NOTRACK": true, "CT": true, "HMARK": true, "TEE": true, "TCPOPTSTRIP": true,
}

// verdict is what a chain can do to a packet it is given.
type verdict struct {
	accept bool   // it can accept (or hand the packet to a program that may)
	why    string // the rule that can, when accept
}

// judgeChain reports whether a user chain can accept a packet, following
// its jumps and gotos. A chain can always return (or fall off its end):
// a goto from INPUT to it then applies INPUT's policy.
func (ts *tableState) judgeChain(name string, seen map[string]bool) verdict {
	if v, ok := ts.judged[name]; ok {
		return v
	}
	if seen[name] {
		return verdict{} // a loop; the kernel refuses those anyway
	}
	seen[name] = true
	var v verdict
	for _, line := range ts.chainRules[name] {
		r := parseRule(line)
		if ok, why := ts.canAccept(r, "", seen); ok {
			v = verdict{accept: true, why: "-A " + name + " " + r.text}
			if why != "" {
				v.why += " (" + why + ")"
			}
			break
		}
	}
	ts.judged[name] = v
	return v
}

// canAccept reports whether rule r can admit a packet dialgate would
// drop, and why. policy is INPUT's policy when r is in INPUT, "" inside a
// user chain (where RETURN goes back to the caller).
func (ts *tableState) canAccept(r iptRule, policy string, seen map[string]bool) (bool, string) {
	switch t := r.target; {
	case t == "" || t == "DROP" || t == "REJECT" || nonTerminating[t]:
		return false, ""
	case t == Chain || t == chainSpare:
		return false, "" // dialgate's own chain: it ends with a drop
	case t == "ACCEPT":
		if admitsOnlyOurs(r.matches) {
			return false, ""
		}
		return true, "ACCEPT"
	case t == "RETURN":
		if policy == "ACCEPT" {
			return true, "RETURN from INPUT applies its policy, ACCEPT"
		}
		return false, ""
	case t == "QUEUE" || t == "NFQUEUE":
		return true, "hands packets to a program that may accept them"
	case t == "SET":
		for i, a := range r.targs {
			if a == "--add-set" && i+1 < len(r.targs) && strings.HasPrefix(r.targs[i+1], "dialgate-") {
				return true, "adds addresses to dialgate's set " + r.targs[i+1]
			}
		}
		return false, ""
	case ts.chains[t]:
		v := ts.judgeChain(t, seen)
		if v.accept {
			return true, "via " + v.why
		}
		if r.isGoto && policy == "ACCEPT" {
			return true, "a goto from INPUT to " + t + " applies INPUT's policy, ACCEPT, when " + t + " returns"
		}
		return false, ""
	}
	return true, "unknown target " + r.target
}

// admitsOnlyOurs reports whether an ACCEPT's matches confine it to what
// dialgate's own first rules accept anyway: loopback, or established and
// related connections. Any further match only narrows it.
func admitsOnlyOurs(m []string) bool {
	for i, a := range m {
		if i > 0 && m[i-1] == "!" {
			continue
		}
		switch a {
		case "-i", "--in-interface":
			if i+1 < len(m) && m[i+1] == "lo" {
				return true
			}
		case "--ctstate", "--state":
			if i+1 < len(m) && onlyEstablished(m[i+1]) {
				return true
			}
		}
	}
	return false
}

func onlyEstablished(states string) bool {
	for _, s := range strings.Split(states, ",") {
		if s != "ESTABLISHED" && s != "RELATED" {
			return false
		}
	}
	return true
}

// firstJump returns the INPUT position of the first jump to one of
// dialgate's chains, and which; 0 when there is none.
func (ts *tableState) firstJump() (int, string) {
	pos := 0
	for n := range ts.jumps {
		if pos == 0 || n < pos {
			pos = n
		}
	}
	return pos, ts.jumps[pos]
}

// ahead judges the INPUT rules before position pos (1-based).
func (ts *tableState) ahead(pos int) []AheadRule {
	var out []AheadRule
	for i := 0; i < pos-1 && i < len(ts.input); i++ {
		r := parseRule(ts.input[i])
		bad, why := ts.canAccept(r, ts.policy, map[string]bool{})
		a := AheadRule{Rule: "-A " + hook + " " + r.text, Harmless: !bad}
		switch {
		case bad:
			a.Why = "can accept before dialgate: " + why
		case r.target == "":
			a.Why = "no target: it only matches"
		case r.target == "ACCEPT":
			a.Why = "accepts only loopback or established traffic, which dialgate accepts first too"
		case ts.chains[r.target] && r.target != Chain && r.target != chainSpare:
			a.Why = "jumps to " + r.target + ", which can only drop, reject, return or log"
		default:
			a.Why = r.target + " cannot accept a packet"
		}
		out = append(out, a)
	}
	return out
}

// inForce reports whether the jump at pos is effectively first: only
// harmless rules ahead of it.
func inForce(ahead []AheadRule) bool {
	for _, a := range ahead {
		if !a.Harmless {
			return false
		}
	}
	return true
}

// freePBXChains returns the FreePBX Firewall module's chains in the
// table: it names them fpbx* (fpbxfirewall, fpbxreject, fpbxrfw,
// fpbxsmarthosts, fpbx-rtp, fpbxsvc-ucp, ...).
func (ts *tableState) freePBXChains() []string {
	var out []string
	for c := range ts.chains {
		if strings.HasPrefix(c, "fpbx") {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// fail2banAhead returns the fail2ban chains jumped to from the rules
// ahead of dialgate.
func fail2banAhead(ahead []AheadRule) []string {
	var out []string
	for _, a := range ahead {
		r := parseRule(strings.TrimPrefix(a.Rule, "-A "+hook+" "))
		if strings.HasPrefix(r.target, "f2b-") || strings.HasPrefix(r.target, "fail2ban") {
			if !slices.Contains(out, r.target) {
				out = append(out, r.target)
			}
		}
	}
	return out
}

// Coexistence notes.

func noteFreePBXIPTables(chains []string) string {
	shown := chains
	if len(shown) > 4 {
		shown = append(slices.Clone(shown[:4]), "...")
	}
	return fmt.Sprintf("the FreePBX Firewall module is active (iptables chains %s): it resets iptables when it starts and puts "+
		"its own rules first in INPUT, and they accept traffic dialgate would drop. dialgate's watchdog moves its jump back "+
		"in front each time, so the two keep undoing each other. Disable the FreePBX Firewall module "+
		"(fwconsole firewall disable) and let dialgate filter, or keep dialgate's jump first in INPUT",
		strings.Join(shown, ", "))
}

const noteFreePBXNFT = "the FreePBX Firewall module is active (nftables table inet fpbx, or its iptables chains): its input " +
	"chain filters after dialgate's, so a packet must pass both and an address dialgate admits may still be dropped there. " +
	"Disable the FreePBX Firewall module (fwconsole firewall disable), or admit the same addresses in it"

func noteFail2ban(chains []string) string {
	return fmt.Sprintf("fail2ban's chains (%s) run ahead of dialgate's jump in INPUT: they can only drop, reject or return, "+
		"so dialgate stays in force, and an address fail2ban bans stays banned even when dialgate admits it",
		strings.Join(chains, ", "))
}

const (
	noteOtherNFT = "the nftables backend's table inet dialgate is loaded too and keeps filtering beside this one; " +
		"remove it (dialgate remove, then start dialgate again) before using one backend"
	noteOtherIPT = "the iptables backend's sets (dialgate-*) are loaded too, and its chain may still filter beside this table; " +
		"remove it (dialgate remove, then start dialgate again) before using one backend"
)
