// Package sshpeertest stands in for sshd in tests: a process named sshd,
// inside a network namespace the test made, that holds a real TCP
// connection from a client and runs the client's command as its child,
// with exactly the environment the client asks for, the way sshd runs a
// login shell. Commands below it can then clear their environment (env
// -i, su -, setsid) as sudo does, and tests check that the session is
// still found.
//
// The test binary plays every part: call Main first thing in TestMain
// (or from an init function), so that a copy started as the fake sshd or
// as its client does that and exits.
package sshpeertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dialgate/dialgate/firewall/fwtest"
)

const (
	envSSHD   = "SSHPEERTEST_SSHD"   // address to listen on: be the fake sshd
	envExec   = "SSHPEERTEST_EXEC"   // "1": be an sshd without a connection
	envClient = "SSHPEERTEST_CLIENT" // "to [from]": be the client
)

// Request is a command for the fake sshd to run.
type Request struct {
	// Env is the command's whole environment; nothing is inherited.
	Env  []string
	Argv []string
}

// Reply is how the command ended.
type Reply struct {
	Stdout, Stderr string
	Code           int // exit code; -1 if it did not start or died of a signal
	Err            string
}

// Main runs the part this process was started for, if any, and then
// exits; otherwise it returns at once.
func Main() {
	var err error
	switch {
	case os.Getenv(envSSHD) != "":
		err = serve(os.Getenv(envSSHD))
	case os.Getenv(envExec) != "":
		err = execOne(os.Stdin, os.Stdout)
	case os.Getenv(envClient) != "":
		err = client(os.Getenv(envClient), os.Stdin, os.Stdout)
	default:
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshpeertest:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// NetNS creates a network namespace with the loopback up and removes it
// when the test ends.
func NetNS(t testing.TB) string {
	t.Helper()
	fwtest.RequireRoot(t)
	ns := fmt.Sprintf("sshpeer-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns, err, out)
	}
	return ns
}

// SSHD is a running fake sshd.
type SSHD struct {
	PID int
	cmd *exec.Cmd
}

// StartSSHD starts a fake sshd in namespace ns listening on listen
// ("[::]:22"); it is killed when the test ends.
func StartSSHD(t testing.TB, ns, listen string) *SSHD {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, sshdPath(t))
	cmd.Env = append(os.Environ(), envSSHD+"="+listen)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(out, b, 1)
		line <- string(b[:n])
		io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		pid, ok := strings.CutPrefix(strings.TrimSpace(l), "listening ")
		if s.PID, err = strconv.Atoi(pid); !ok || err != nil {
			t.Fatalf("fake sshd did not start: %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake sshd did not start within 10s")
	}
	return s
}

// Run connects from address from in namespace ns to the fake sshd at to
// and has it run req. An invalid from leaves the choice to the kernel.
func Run(t testing.TB, ns string, from netip.Addr, to netip.AddrPort, req Request) Reply {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	arg := to.String()
	if from.IsValid() {
		arg += " " + from.String()
	}
	return call(t, exec.Command("ip", "netns", "exec", ns, self), envClient+"="+arg, req)
}

// Exec runs req under a process named sshd in namespace ns that holds no
// connection, so the session cannot be found from below it.
func Exec(t testing.TB, ns string, req Request) Reply {
	t.Helper()
	return call(t, exec.Command("ip", "netns", "exec", ns, sshdPath(t)), envExec+"=1", req)
}

func call(t testing.TB, cmd *exec.Cmd, env string, req Request) Reply {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd.Env = append(os.Environ(), env)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &errOut
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%v: no answer in 2 minutes; stderr: %s", cmd.Args, errOut.String())
	}
	var rep Reply
	if err != nil || json.Unmarshal(out.Bytes(), &rep) != nil {
		t.Fatalf("%v: %v; stdout %q, stderr %q", cmd.Args, err, out.String(), errOut.String())
	}
	if rep.Err != "" {
		t.Fatalf("%v: the fake sshd could not run %q: %s", cmd.Args, req.Argv, rep.Err)
	}
	return rep
}

// sshdPath is a link named sshd to the test binary: a process started
// through it is called (has the comm) "sshd".
func sshdPath(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "sshd")
	if err := os.Symlink(self, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func serve(listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening %d\n", os.Getpid())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			var req Request
			if err := json.NewDecoder(c).Decode(&req); err != nil {
				return
			}
			json.NewEncoder(c).Encode(runReq(req))
		}()
	}
}

func execOne(in io.Reader, out io.Writer) error {
	var req Request
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(runReq(req))
}

func runReq(req Request) Reply {
	if len(req.Argv) == 0 {
		return Reply{Code: -1, Err: "no command"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, req.Argv[0], req.Argv[1:]...)
	cmd.Env = append([]string{}, req.Env...) // never nil: nothing inherited
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	rep := Reply{Stdout: o.String(), Stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		rep.Code = ee.ExitCode()
	case err != nil:
		rep.Code, rep.Err = -1, err.Error()
	}
	return rep
}

func client(arg string, in io.Reader, out io.Writer) error {
	f := strings.Fields(arg)
	to, err := netip.ParseAddrPort(f[0])
	if err != nil {
		return err
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if len(f) > 1 {
		from, err := netip.ParseAddr(f[1])
		if err != nil {
			return err
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
	}
	c, err := d.Dial("tcp", to.String())
	if err != nil {
		return err
	}
	defer c.Close()
	req, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	if _, err := c.Write(req); err != nil {
		return err
	}
	_, err = io.Copy(out, c)
	return err
}
