package firewall

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// nsID identifies a network namespace: the device and inode of its
// /proc file.
type nsID struct{ dev, ino uint64 }

const threadNSPath = "/proc/thread-self/ns/net"

// currentNS returns a descriptor of the calling thread's namespace, and
// its identity.
func currentNS() (int, nsID, error) {
	fd, err := unix.Open(threadNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nsID{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, nsID{}, err
	}
	return fd, nsID{st.Dev, st.Ino}, nil
}

// threadNS identifies the namespace of the calling thread. A goroutine
// that has not locked its thread only ever runs on threads in the
// process's own namespace (code that switches a thread keeps it locked
// until it has switched back), so the answer holds for the rest of the
// call.
func threadNS() (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(threadNSPath, &st); err != nil {
		return nsID{}, err
	}
	return nsID{st.Dev, st.Ino}, nil
}

// runInNS runs fn on a thread of its own switched into namespace ns, and
// waits for it. Processes fn starts belong to ns. If the thread cannot
// switch back it is never unlocked, so it dies with its goroutine rather
// than serve other code in the wrong namespace.
func runInNS(ns int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, _, err := currentNS()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("firewall: network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("firewall: enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("firewall: leave network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
