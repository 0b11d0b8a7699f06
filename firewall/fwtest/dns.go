package fwtest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative name server for tests, run in one of the lab's
// namespaces. Names answer with the addresses set for them; names marked
// dead get no answer at all (a name server that times out).
type DNS struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	dead  map[string]bool
	srv   *dns.Server
}

// StartDNS serves DNS on addr:53/udp inside namespace ns and points the
// namespace client's resolver (/etc/netns/<client>/resolv.conf, which
// `ip netns exec` mounts over /etc/resolv.conf) at it.
func StartDNS(t testing.TB, ns string, addr netip.Addr, client string) *DNS {
	t.Helper()
	d := &DNS{addrs: map[string][]netip.Addr{}, dead: map[string]bool{}}
	var pc net.PacketConn
	err := Do(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, 53).String())
		return err
	})
	if err != nil {
		t.Fatalf("dns: %v", err)
	}
	d.srv = &dns.Server{PacketConn: pc, Handler: d}
	go d.srv.ActivateAndServe()
	t.Cleanup(func() { d.srv.Shutdown() })

	dir := filepath.Join("/etc/netns", client)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := fmt.Sprintf("nameserver %s\noptions timeout:1 attempts:1\n", addr)
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// Set makes name answer with addrs (A and AAAA as they apply).
func (d *DNS) Set(name string, addrs ...netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs[dns.Fqdn(strings.ToLower(name))] = addrs
	delete(d.dead, dns.Fqdn(strings.ToLower(name)))
}

// Kill makes name unanswered: queries for it time out.
func (d *DNS) Kill(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead[dns.Fqdn(strings.ToLower(name))] = true
}

// Stop shuts the server down: every query times out from then on.
func (d *DNS) Stop() { d.srv.Shutdown() }

// ServeDNS implements dns.Handler.
func (d *DNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		return
	}
	qu := q.Question[0]
	name := strings.ToLower(qu.Name)
	d.mu.Lock()
	dead, addrs, known := d.dead[name], d.addrs[name], d.addrs[name] != nil
	d.mu.Unlock()
	if dead {
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: qu.Name, Class: dns.ClassINET, Ttl: 1}
		switch {
		case qu.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case qu.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	w.WriteMsg(m)
}
