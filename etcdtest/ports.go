package etcdtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// Ports are drawn from below the kernel's ephemeral range (32768-60999
// by default on Linux) because ports from that range are handed out to
// every outgoing connection, including the members' own peer dials, and
// a probed-free ephemeral port is likely to be taken again before etcd
// binds it. Below the range only programs that pick explicit ports can
// collide, and Start retries on EADDRINUSE for those.
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{} // never reuse within this test binary
)

func pickPort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if portUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			continue
		}
		portUsed[p] = true
		return p, nil
	}
	return 0, errors.New("etcdtest: no free loopback port found")
}
