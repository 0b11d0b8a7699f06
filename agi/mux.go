package agi

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ServeMux routes sessions by request path (Env.Path), the way
// http.ServeMux routes requests: the URL agi://host:port/authorize?x=1
// matches the pattern "/authorize". A pattern ending in a slash, such as
// "/admin/", also matches every path under it; the longest matching
// pattern wins. The query never takes part in routing.
//
// A session whose path matches nothing is logged and closed without a
// command. Asterisk treats such an early close as a script that ended
// normally (AGISTATUS=SUCCESS) and continues with the next priority, so
// the dialplan, not a mistyped URL, decides what happens to the call.
// Sending HANGUP instead would cut calls over a configuration typo.
type ServeMux struct {
	mu       sync.RWMutex
	exact    map[string]Handler
	prefixes []muxEntry // longest pattern first
}

type muxEntry struct {
	pattern string
	h       Handler
}

// NewServeMux returns an empty ServeMux.
func NewServeMux() *ServeMux { return &ServeMux{} }

// Handle registers h for pattern. It panics if the pattern is empty, does
// not start with '/', or is already registered, or if h is nil: these
// are programming errors, as in net/http.
func (m *ServeMux) Handle(pattern string, h Handler) {
	if pattern == "" || pattern[0] != '/' {
		panic(fmt.Sprintf("agi: invalid pattern %q: must start with '/'", pattern))
	}
	if strings.Contains(pattern, "?") {
		panic(fmt.Sprintf("agi: invalid pattern %q: routing ignores the query", pattern))
	}
	if h == nil {
		panic("agi: nil handler for pattern " + pattern)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.exact[pattern]; dup {
		panic("agi: multiple registrations for " + pattern)
	}
	if m.exact == nil {
		m.exact = make(map[string]Handler)
	}
	m.exact[pattern] = h
	if strings.HasSuffix(pattern, "/") {
		m.prefixes = append(m.prefixes, muxEntry{pattern: pattern, h: h})
		slices.SortStableFunc(m.prefixes, func(a, b muxEntry) int {
			return len(b.pattern) - len(a.pattern)
		})
	}
}

// HandleFunc registers f for pattern.
func (m *ServeMux) HandleFunc(pattern string, f func(ctx context.Context, s *Session)) {
	m.Handle(pattern, HandlerFunc(f))
}

// Handler returns the handler for path and the pattern it matched, or
// nil and "" when nothing matches.
func (m *ServeMux) Handler(path string) (h Handler, pattern string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if h, ok := m.exact[path]; ok {
		return h, path
	}
	for _, e := range m.prefixes {
		if strings.HasPrefix(path, e.pattern) {
			return e.h, e.pattern
		}
	}
	return nil, ""
}

// ServeAGI dispatches the session to the handler registered for its path.
func (m *ServeMux) ServeAGI(ctx context.Context, s *Session) {
	h, _ := m.Handler(s.Env.Path())
	if h == nil {
		s.log.Warn("agi: no handler for request path; closing without a command")
		return
	}
	h.ServeAGI(ctx, s)
}
