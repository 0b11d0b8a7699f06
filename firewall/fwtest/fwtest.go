// Package fwtest builds throwaway network-namespace labs for firewall
// tests: a "server" namespace that carries the real chain and sets, and a
// "client" namespace joined to it by a veth pair, from which real packets
// are sent. Nothing is ever installed in the host's own namespace.
//
// Addresses come from the documentation ranges (203.0.113.0/24,
// 2001:db8::/64) so they are not LAN ranges, plus 10.99.0.0/24 for LAN
// tests; all of them exist only inside the lab.
package fwtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// Lab addresses. Client has two addresses per family: one tests whitelist
// the other stays a stranger.
var (
	ServerV4  = netip.MustParseAddr("203.0.113.1")
	ServerV6  = netip.MustParseAddr("2001:db8::1")
	ServerLAN = netip.MustParseAddr("10.99.0.1")
	ClientV4  = netip.MustParseAddr("203.0.113.10")
	OtherV4   = netip.MustParseAddr("203.0.113.20")
	ClientV6  = netip.MustParseAddr("2001:db8::10")
	OtherV6   = netip.MustParseAddr("2001:db8::20")
	ClientLAN = netip.MustParseAddr("10.99.0.2")
)

// RequireRoot skips the test when not root, except under CI, where a
// skipped kernel test would hide a missing capability: there it fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces, iptables); CI must run it as root")
	}
	t.Skip("needs root for network namespaces")
}

// Lab is a server and a client namespace joined by a veth pair.
type Lab struct {
	Server, Client string // namespace names, for `ip netns exec`
}

// NewLab creates the namespaces and removes them when the test ends.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	l := &Lab{Server: "dgs-" + id, Client: "dgc-" + id}
	t.Cleanup(func() {
		run("ip", "netns", "del", l.Server)
		run("ip", "netns", "del", l.Client)
	})
	steps := [][]string{
		{"ip", "netns", "add", l.Server},
		{"ip", "netns", "add", l.Client},
		{"ip", "link", "add", "veth-s", "netns", l.Server, "type", "veth", "peer", "name", "veth-c", "netns", l.Client},
		{"ip", "-n", l.Server, "link", "set", "lo", "up"},
		{"ip", "-n", l.Client, "link", "set", "lo", "up"},
		{"ip", "-n", l.Server, "addr", "add", ServerV4.String() + "/24", "dev", "veth-s"},
		{"ip", "-n", l.Server, "addr", "add", ServerLAN.String() + "/24", "dev", "veth-s"},
		{"ip", "-n", l.Server, "-6", "addr", "add", ServerV6.String() + "/64", "dev", "veth-s", "nodad"},
		{"ip", "-n", l.Client, "addr", "add", ClientV4.String() + "/24", "dev", "veth-c"},
		{"ip", "-n", l.Client, "addr", "add", OtherV4.String() + "/24", "dev", "veth-c"},
		{"ip", "-n", l.Client, "addr", "add", ClientLAN.String() + "/24", "dev", "veth-c"},
		{"ip", "-n", l.Client, "-6", "addr", "add", ClientV6.String() + "/64", "dev", "veth-c", "nodad"},
		{"ip", "-n", l.Client, "-6", "addr", "add", OtherV6.String() + "/64", "dev", "veth-c", "nodad"},
		{"ip", "-n", l.Server, "link", "set", "veth-s", "up"},
		{"ip", "-n", l.Client, "link", "set", "veth-c", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			t.Fatalf("lab setup: %v", err)
		}
	}
	if err := l.waitLinks(5 * time.Second); err != nil {
		t.Fatalf("lab setup: %v", err)
	}
	return l
}

// waitLinks returns once every source address can reach the server: a
// TCP connect to a closed port answered by a reset proves the path (the
// veth carrier and IPv6 neighbour discovery take a moment on a new link).
func (l *Lab) waitLinks(limit time.Duration) error {
	pairs := [][2]netip.Addr{{ClientV4, ServerV4}, {OtherV4, ServerV4}, {ClientLAN, ServerLAN}, {ClientV6, ServerV6}, {OtherV6, ServerV6}}
	deadline := time.Now().Add(limit)
	for _, p := range pairs {
		for {
			err := Do(l.Client, func() error {
				d := net.Dialer{Timeout: 200 * time.Millisecond, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(p[0], 0))}
				c, err := d.Dial("tcp", netip.AddrPortFrom(p[1], 1).String())
				if err == nil {
					c.Close()
				}
				return err
			})
			if errors.Is(err, syscall.ECONNREFUSED) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("link %s -> %s not up after %v: %v", p[0], p[1], limit, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Do runs fn on an OS thread switched into namespace ns. Sockets fn
// opens, and processes it starts, belong to ns.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: if restoring the namespace failed
		// it must die with the goroutine rather than serve other code.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Exec runs a command inside namespace ns and returns its combined output.
func (l *Lab) Exec(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s: %w: %s", ns, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Echo starts TCP and UDP echo servers on the given ports in the server
// namespace, dual-stack, until the test ends.
func (l *Lab) Echo(t testing.TB, proto string, ports ...uint16) {
	t.Helper()
	for _, port := range ports {
		addr := fmt.Sprintf("[::]:%d", port)
		err := Do(l.Server, func() error {
			switch proto {
			case "tcp":
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return err
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() { io.Copy(c, c); c.Close() }()
					}
				}()
			case "udp":
				pc, err := net.ListenPacket("udp", addr)
				if err != nil {
					return err
				}
				t.Cleanup(func() { pc.Close() })
				go func() {
					buf := make([]byte, 2048)
					for {
						n, from, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						pc.WriteTo(buf[:n], from)
					}
				}()
			default:
				return fmt.Errorf("proto %q", proto)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("echo %s/%d: %v", proto, port, err)
		}
	}
}

// Reach reports whether a new connection (TCP) or a datagram and its echo
// (UDP) from src in the client namespace gets to dst:port within timeout.
// A firewall DROP shows up as a timeout; anything else unexpected is an
// error, so a broken lab cannot pass for a working firewall.
func (l *Lab) Reach(proto string, src, dst netip.Addr, port uint16, timeout time.Duration) (bool, error) {
	return l.ReachWith(proto, src, dst, port, timeout, nil)
}

// ReachWith is Reach with a payload of the caller's choosing for UDP (a
// SIP message, say); nil sends a probe marker.
func (l *Lab) ReachWith(proto string, src, dst netip.Addr, port uint16, timeout time.Duration, payload []byte) (bool, error) {
	var reached bool
	err := Do(l.Client, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		remote := netip.AddrPortFrom(dst, port).String()
		switch proto {
		case "tcp":
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err := d.DialContext(ctx, "tcp", remote)
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
					return nil
				}
				return err
			}
			c.Close()
			reached = true
		case "udp":
			d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err := d.DialContext(ctx, "udp", remote)
			if err != nil {
				return err
			}
			defer c.Close()
			// Only reads get deadlines: a UDP write does not block, and a
			// write deadline that passed would read as a drop.
			msg := payload
			if msg == nil {
				msg = []byte("dialgate-probe")
			}
			// Several tries: a first datagram can be lost to neighbour
			// discovery on a fresh link, which is not the firewall's doing.
			buf := make([]byte, 4096)
			for i := 0; i < 3; i++ {
				if _, err := c.Write(msg); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(timeout / 3))
				n, err := c.Read(buf)
				if err == nil && string(buf[:n]) == string(msg) {
					reached = true
					return nil
				}
				if err != nil && !isTimeout(err) {
					return err
				}
			}
		default:
			return fmt.Errorf("proto %q", proto)
		}
		return nil
	})
	return reached, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Probe is one expectation: proto/port from Src to Dst should or should
// not get through.
type Probe struct {
	Proto string
	Src   netip.Addr
	Dst   netip.Addr
	Port  uint16
	Want  bool
	// Payload is sent instead of a probe marker (UDP only).
	Payload []byte
}

func (p Probe) String() string {
	verb := "dropped"
	if p.Want {
		verb = "passes"
	}
	return fmt.Sprintf("%s %s -> %s port %d %s", p.Proto, p.Src, p.Dst, p.Port, verb)
}

// Check runs probes concurrently and reports every one that did not do
// what it wanted.
func (l *Lab) Check(t testing.TB, timeout time.Duration, probes ...Probe) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(probes))
	got := make([]bool, len(probes))
	sem := make(chan struct{}, 32)
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			got[i], errs[i] = l.ReachWith(p.Proto, p.Src, p.Dst, p.Port, timeout, p.Payload)
		}()
	}
	wg.Wait()
	for i, p := range probes {
		if errs[i] != nil {
			t.Errorf("%v: %v", p, errs[i])
		} else if got[i] != p.Want {
			t.Errorf("want: %v; got the opposite", p)
		}
	}
}
