package etcdtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// Cable is a byte-copying proxy between one client and the cluster's
// members, standing in for that client's network path to etcd.
//
// Cut behaves like a cable pulled out mid-flight: established
// connections are closed (so the client notices at once rather than
// after keepalive timeouts), and new connections are accepted but
// black-holed — nothing is forwarded and nothing is answered — the way
// a dial across a dropped link leaves the client waiting until its own
// timeout. Refusing instead would be unrealistically fast and would push
// the gRPC client into exponential reconnect backoff, making Mend slow
// to take effect. Mend closes the black-holed connections so the client
// redials promptly and gets through.
//
// With no member running, a connection through an intact Cable is closed
// at once, as a host whose etcd died would reset it.
//
// Because it copies bytes, a Cable carries TLS unchanged; its unix
// socket is named like the members' so the server certificate matches.
type Cable struct {
	c       *Cluster
	sockDir string
	unixL   net.Listener
	tcpL    net.Listener

	mu    sync.Mutex
	cut   bool
	next  int                   // member to try first, rotated per connection
	live  map[net.Conn]struct{} // both ends of forwarded connections
	held  map[net.Conn]struct{} // black-holed while cut
	close bool
	wg    sync.WaitGroup
}

// Cable starts a proxy that forwards to whichever members are running,
// closed at t's cleanup.
func (c *Cluster) Cable(t testing.TB) *Cable {
	t.Helper()
	dir, err := shortTempDir(t)
	if err != nil {
		t.Fatalf("etcdtest: cable: %v", err)
	}
	ul, err := net.Listen("unix", filepath.Join(dir, sockName))
	if err != nil {
		t.Fatalf("etcdtest: cable: %v", err)
	}
	// Port 0 is fine here: unlike a member, a Cable keeps its listener
	// for its whole life, even while cut.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = ul.Close()
		t.Fatalf("etcdtest: cable: %v", err)
	}
	cb := &Cable{
		c:       c,
		sockDir: dir,
		unixL:   ul,
		tcpL:    tl,
		live:    map[net.Conn]struct{}{},
		held:    map[net.Conn]struct{}{},
	}
	cb.wg.Add(2)
	go cb.accept(ul)
	go cb.accept(tl)
	t.Cleanup(cb.shutdown)
	return cb
}

// Endpoints returns the Cable's client URLs: its TCP one first, then its
// unix socket one, which works from other network namespaces.
func (cb *Cable) Endpoints() []string {
	return []string{
		fmt.Sprintf("%s://%s", cb.c.scheme(true), cb.tcpL.Addr()),
		cb.c.scheme(false) + "://" + filepath.Join(cb.sockDir, sockName),
	}
}

// UnixEndpoints returns only the Cable's unix socket URL.
func (cb *Cable) UnixEndpoints() []string { return cb.Endpoints()[1:] }

// Retarget makes new connections go to another cluster's members: the
// client's etcd replaced behind its back (a cluster rebuilt, restored
// from an older snapshot). Cut and Mend around it drop the connections
// already made.
func (cb *Cable) Retarget(c *Cluster) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	cb.c = c
}

// Cut drops every connection through the Cable and black-holes new ones.
func (cb *Cable) Cut() {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	cb.cut = true
	for conn := range cb.live {
		_ = conn.Close()
	}
}

// Mend lets new connections through again.
func (cb *Cable) Mend() {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	cb.cut = false
	for conn := range cb.held {
		_ = conn.Close()
		delete(cb.held, conn)
	}
}

func (cb *Cable) shutdown() {
	cb.mu.Lock()
	cb.close = true
	_ = cb.unixL.Close()
	_ = cb.tcpL.Close()
	for conn := range cb.live {
		_ = conn.Close()
	}
	for conn := range cb.held {
		_ = conn.Close()
	}
	cb.mu.Unlock()
	cb.wg.Wait()
}

func (cb *Cable) accept(l net.Listener) {
	defer cb.wg.Done()
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		cb.mu.Lock()
		switch {
		case cb.close:
			_ = conn.Close()
		case cb.cut:
			cb.held[conn] = struct{}{}
		default:
			cb.live[conn] = struct{}{}
			cb.wg.Add(1)
			go cb.forward(conn)
		}
		cb.mu.Unlock()
	}
}

func (cb *Cable) forward(client net.Conn) {
	defer cb.wg.Done()
	defer cb.drop(client)
	server := cb.dialMember()
	if server == nil {
		return
	}
	defer cb.drop(server)
	cb.mu.Lock()
	if cb.cut || cb.close {
		// Cut raced with the dial; honour it.
		cb.mu.Unlock()
		return
	}
	cb.live[server] = struct{}{}
	cb.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	// Either direction ending ends the connection, as for a real peer.
	<-done
	_ = client.Close()
	_ = server.Close()
	<-done
}

// dialMember tries the members in rotation so several connections
// spread over the cluster and a stopped member is skipped.
func (cb *Cable) dialMember() net.Conn {
	cb.mu.Lock()
	paths := cb.c.unixPaths()
	start := cb.next
	cb.next++
	cb.mu.Unlock()
	for k := range paths {
		conn, err := net.Dial("unix", paths[(start+k)%len(paths)])
		if err == nil {
			return conn
		}
	}
	return nil
}

func (cb *Cable) drop(conn net.Conn) {
	_ = conn.Close()
	cb.mu.Lock()
	delete(cb.live, conn)
	cb.mu.Unlock()
}
