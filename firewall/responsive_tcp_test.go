package firewall_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/firewall/fwtest"
)

// tcpSink is a TCP echo server on port 5060 in the lab's server
// namespace that also records what it received and how many
// connections it accepted and saw end, to tell what the firewall let
// through apart from what the client sent.
type tcpSink struct {
	mu             sync.Mutex
	got            []byte
	accepted, ends int
}

func newTCPSink(t *testing.T, lab *fwtest.Lab) *tcpSink {
	t.Helper()
	s := &tcpSink{}
	err := fwtest.Do(lab.Server, func() error {
		ln, err := net.Listen("tcp", "[::]:5060")
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
				s.mu.Lock()
				s.accepted++
				s.mu.Unlock()
				go func() {
					defer c.Close()
					buf := make([]byte, 4096)
					for {
						n, err := c.Read(buf)
						if n > 0 {
							s.mu.Lock()
							s.got = append(s.got, buf[:n]...)
							s.mu.Unlock()
							c.Write(buf[:n])
						}
						if err != nil {
							s.mu.Lock()
							s.ends++
							s.mu.Unlock()
							return
						}
					}
				}()
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *tcpSink) counts() (accepted, ends int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.ends
}

func (s *tcpSink) received(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.got, b)
}

// dialTCP connects from src; nil when the connection is not made within
// timeout (a dropped SYN).
func dialTCP(t *testing.T, lab *fwtest.Lab, src, dst netip.Addr, timeout time.Duration) net.Conn {
	t.Helper()
	var c net.Conn
	err := fwtest.Do(lab.Client, func() (err error) {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err = d.Dial("tcp", netip.AddrPortFrom(dst, 5060).String())
		if err != nil && isTimeout(err) {
			c, err = nil, nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// echoed writes msg on c and reports whether all of it came back.
func echoed(t *testing.T, c net.Conn, msg []byte) bool {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		if isTimeout(err) {
			return false
		}
		t.Fatal(err)
	}
	return bytes.Equal(buf, msg)
}

// TestResponsiveSIPTCP makes real TCP connections from strangers to the
// SIP over TCP port with responsive SIP on (6 a minute, burst 3), with
// the client's TCP timestamps on (32-byte headers) and off (20-byte
// headers): a stranger's connection is made and carries its REGISTER,
// not an INVITE after it, nor a segment of one byte; its FIN passes;
// connections beyond the burst are not made; whitelisted sources are
// not limited; once granted, the stranger's INVITE passes.
func TestResponsiveSIPTCP(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		for _, ts := range []string{"1", "0"} {
			t.Run("timestamps="+ts, func(t *testing.T) {
				lab := fwtest.NewLab(t)
				addStrangers(t, lab)
				if _, err := lab.Exec(lab.Client, "sysctl", "-qw", "net.ipv4.tcp_timestamps="+ts); err != nil {
					t.Fatal(err)
				}
				b := bk.new(t, lab)
				sink := newTCPSink(t, lab)
				st := responsiveState(true)
				st.Config.Responsive.TCP = true
				st.Add(firewall.CodeSIPTCP, host(fwtest.ClientV4), 0)
				st.Add(firewall.CodeSIPTCP, host(fwtest.ClientV6), 0)
				in(t, lab, func() error { return b.Apply(context.Background(), st) })
				verifyClean(t, lab, b, st)
				for _, fam := range []struct {
					name                   string
					server, client, s1, s2 netip.Addr
				}{
					{"v4", fwtest.ServerV4, fwtest.ClientV4, fwtest.OtherV4, stranger2V4},
					{"v6", fwtest.ServerV6, fwtest.ClientV6, fwtest.OtherV6, stranger2V6},
				} {
					t.Run(fam.name, func(t *testing.T) {
						testResponsiveTCP(t, lab, b, sink, fam.server, fam.client, fam.s1, fam.s2)
					})
				}
				st.Add(firewall.CodeSIPTCP, host(stranger2V4), 0)
				st.Add(firewall.CodeSIPTCP, host(stranger2V6), 0)
				verifyClean(t, lab, b, st)
			})
		}
	})
}

func testResponsiveTCP(t *testing.T, lab *fwtest.Lab, b firewall.Backend, sink *tcpSink, server, client, s1, s2 netip.Addr) {
	// The handshake: its SYN within the rate, its ACK without payload.
	acc0, _ := sink.counts()
	c := dialTCP(t, lab, s1, server, time.Second)
	if c == nil {
		t.Fatal("stranger's first connection not made")
	}
	time.Sleep(200 * time.Millisecond)
	if acc, _ := sink.counts(); acc != acc0+1 {
		t.Fatalf("server accepted %d connections, want 1 (the handshake's ACK dropped?)", acc-acc0)
	}
	reg := sipMessage("REGISTER", "pbx.example.org")
	if !echoed(t, c, reg) {
		t.Fatal("stranger's REGISTER over TCP did not reach the server")
	}
	if !echoed(t, c, append(sipMessage("REGISTER", "pbx.example.org"), "2"...)) {
		t.Error("stranger's second REGISTER on its connection did not reach the server")
	}
	invite := append(sipMessage("INVITE", "pbx.example.org"), s1.String()...)
	if echoed(t, c, invite) {
		t.Error("stranger's INVITE on its connection echoed")
	}
	time.Sleep(probeTimeout)
	if sink.received(invite) {
		t.Error("stranger's INVITE on its connection reached the server")
	}
	c.(*net.TCPConn).SetLinger(0) // a RST: the INVITE is never delivered

	// A one-byte segment is payload, not an empty segment.
	c2 := dialTCP(t, lab, s1, server, time.Second)
	if c2 == nil {
		t.Fatal("stranger's second connection not made")
	}
	if echoed(t, c2, []byte("R")) {
		t.Error("stranger's one-byte segment echoed")
	}
	// Its FIN passes: the server sees the connection end.
	c3 := dialTCP(t, lab, s1, server, time.Second)
	if c3 == nil {
		t.Fatal("stranger's third connection not made")
	}
	_, endsBefore := sink.counts()
	c3.Close()
	time.Sleep(200 * time.Millisecond)
	if _, ends := sink.counts(); ends <= endsBefore {
		t.Error("stranger's FIN did not reach the server")
	}
	c.Close()
	c2.(*net.TCPConn).SetLinger(0)
	c2.Close()

	// The burst is spent: a fourth connection is not made.
	if dialTCP(t, lab, s1, server, 500*time.Millisecond) != nil {
		t.Error("stranger's connection beyond the burst made")
	}
	// A flood from another stranger: the burst is made, the rest not.
	made := 0
	for range 6 {
		if c := dialTCP(t, lab, s2, server, 300*time.Millisecond); c != nil {
			made++
		}
	}
	if made != 3 {
		t.Errorf("stranger's 6 connections: %d made, want 3", made)
	}

	// The whitelisted source is not limited, and may send anything.
	for i := range 5 {
		w := dialTCP(t, lab, client, server, time.Second)
		if w == nil {
			t.Fatalf("whitelisted connection %d not made", i)
		}
		if !echoed(t, w, sipMessage("INVITE", "pbx.example.org")) {
			t.Errorf("whitelisted INVITE %d did not reach the server", i)
		}
	}

	// Granted: a new connection carries the INVITE.
	in(t, lab, func() error {
		return b.AddMember(context.Background(), firewall.CodeSIPTCP, firewall.Member{Prefix: host(s2)})
	})
	g := dialTCP(t, lab, s2, server, time.Second)
	if g == nil {
		t.Fatal("granted stranger's connection not made")
	}
	if !echoed(t, g, sipMessage("INVITE", "pbx.example.org")) {
		t.Error("granted stranger's INVITE did not reach the server")
	}
}

// Without Responsive.TCP a stranger's TCP connection to the SIP ports is
// dropped as before, while its UDP REGISTER is admitted.
func TestResponsiveTCPOff(t *testing.T) {
	eachBackend(t, func(t *testing.T, bk backend) {
		lab := fwtest.NewLab(t)
		b := bk.new(t, lab)
		lab.Echo(t, "tcp", 5060)
		lab.Echo(t, "udp", 5060)
		st := responsiveState(true)
		in(t, lab, func() error { return b.Apply(context.Background(), st) })
		lab.Check(t, probeTimeout,
			fwtest.Probe{Proto: "tcp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: false},
			fwtest.Probe{Proto: "udp", Src: fwtest.OtherV4, Dst: fwtest.ServerV4, Port: 5060, Want: true, Payload: sipMessage("REGISTER", "pbx.example.org")},
		)
	})
}
