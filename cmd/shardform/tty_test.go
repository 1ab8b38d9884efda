package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what the CLI reads and writes as
// its terminal (slave), and the test's end (master).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	return m, s
}

// ttyStep waits for a text on the terminal, then types an answer.
type ttyStep struct{ wait, send string }

// cliTTY runs the CLI with a terminal as stdin and stderr (stdout stays a
// pipe), types the steps' answers when their prompts appear, and answers
// the result with the terminal's transcript as stderr.
func (cs *clientServer) cliTTY(steps []ttyStep, args ...string) cliResult {
	cs.t.Helper()
	master, slave := openPTY(cs.t)
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = cs.env(nil)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &out, slave
	if err := cmd.Start(); err != nil {
		cs.t.Fatal(err)
	}
	slave.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	seen := func() string { mu.Lock(); defer mu.Unlock(); return screen.String() }
	from := 0
	for _, st := range steps {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(seen()[from:], st.wait) {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				cs.t.Fatalf("the terminal never showed %q:\n%s\nstdout: %s", st.wait, seen(), out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		from = len(seen())
		if _, err := io.WriteString(master, st.send); err != nil {
			cs.t.Fatal(err)
		}
	}
	err := cmd.Wait()
	master.Close()
	<-done
	res := cliResult{stdout: out.String(), stderr: seen()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		cs.t.Fatal(err)
	}
	return res
}
