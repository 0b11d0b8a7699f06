// Package localapi is the LocalAPI contract between the dialgate CLI and
// the daemon: HTTP+JSON on a root-only unix socket. It owns what both
// sides must agree on and nothing else:
//
//   - the wire types the daemon's handlers decode and answer with, which
//     are also what --json prints (types.go), and the JSON conventions
//     they follow (jsonwire.go);
//   - the error codes, each with its HTTP status and the sentinel error
//     the client maps it back to, in one table (errors.go);
//   - the headers and query encodings the CLI sends (types.go, query.go);
//   - the client (client.go).
//
// The routes are served by package daemon (daemon/handler.go), which
// holds the logic; this package has none beyond encoding.
package localapi
