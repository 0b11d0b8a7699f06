package ami

import (
	"strings"
)

// Header is one "Key: Value" line of a message.
type Header struct {
	Key, Value string
}

// Message is one AMI message from Asterisk: a response, or an event.
//
// Headers keep the order and the repetitions of the wire: AMI repeats
// keys (one "Output:" per line of CLI output, "Variable:" in some
// events), so a map would lose data. Lookups by key ignore case, as
// Asterisk's own do.
//
// Messages handed out by a Client may be shared between subscribers and
// must be treated as read-only.
type Message struct {
	// Headers are the message's header lines in wire order.
	Headers []Header

	// Body holds the output of a "Response: Follows" reply, the Command
	// format of Asterisk 13 and older: the CLI lines verbatim, without
	// the closing "--END COMMAND--". It is nil for every other message.
	Body []string
}

// Lookup returns the value of the first header named key, ignoring case,
// and whether there was one.
func (m Message) Lookup(key string) (string, bool) {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			return h.Value, true
		}
	}
	return "", false
}

// Get returns the value of the first header named key, ignoring case, or
// "" if there is none.
func (m Message) Get(key string) string {
	v, _ := m.Lookup(key)
	return v
}

// Values returns the values of every header named key, ignoring case, in
// wire order.
func (m Message) Values(key string) []string {
	var vs []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// Event returns the event name ("PeerStatus"), or "" for a response.
func (m Message) Event() string { return m.Get("Event") }

// Response returns the response status ("Success", "Error", "Follows",
// "Goodbye"), or "" for an event. Some events carry a Response header of
// their own (OriginateResponse); use IsEvent to tell them apart.
func (m Message) Response() string { return m.Get("Response") }

// ActionID returns the ActionID header: the ID of the action a response
// or list event belongs to.
func (m Message) ActionID() string { return m.Get("ActionID") }

// IsEvent reports whether m is an event rather than a response.
func (m Message) IsEvent() bool {
	_, ok := m.Lookup("Event")
	return ok
}

// String renders m as it travels on the wire, for logs and debugging.
func (m Message) String() string {
	var b strings.Builder
	for _, h := range m.Headers {
		b.WriteString(h.Key)
		b.WriteString(": ")
		b.WriteString(h.Value)
		b.WriteString("\r\n")
	}
	if m.Body != nil {
		for _, l := range m.Body {
			b.WriteString(l)
			b.WriteString("\n")
		}
		b.WriteString(endCommand + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}
