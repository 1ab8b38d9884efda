package terraform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// runJSON runs one terraform command with -json in the workspace: its
// machine-readable stream is read as it comes (human lines to the logs),
// its stderr goes to the logs too. Cancelling ctx interrupts Terraform
// (SIGINT: it stops gracefully and releases the state lock) and kills it
// after the grace period. terraform-exec would check the binary's version
// with one more process before each command on a fresh workspace; the
// runner checked it once (NewRunner), so plan and apply are one process
// each.
func (w *Workspace) runJSON(ctx context.Context, args ...string) (streamResult, error) {
	cmd, stderr := w.command(ctx, args)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return streamResult{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return streamResult{}, fmt.Errorf("start terraform %s: %w", args[0], err)
	}
	w.r.stats.started(args[0])
	defer w.killOnForce(cmd)()
	res, readErr := readStream(out, w.logs)
	if readErr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	err = cmd.Wait()
	w.r.stats.exited(args[0], cmd.ProcessState, time.Since(start))
	w.flushLogs()
	if err == nil {
		err = readErr
	}
	if err != nil {
		return res, commandError(ctx, res.failure(), stderr, err)
	}
	return res, nil
}

// runPlain runs one terraform command whose output is for people (init):
// stdout and stderr go to the logs; the error carries the end of stderr.
func (w *Workspace) runPlain(ctx context.Context, args ...string) error {
	return w.runTo(ctx, w.logs, args...)
}

// runTo runs one terraform command with its stdout to stdout (not the
// logs: `output -json` holds sensitive values) and stderr to the logs.
func (w *Workspace) runTo(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd, stderr := w.command(ctx, args)
	cmd.Stdout = stdout
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		w.r.stats.started(args[0])
		stop := w.killOnForce(cmd)
		err = cmd.Wait()
		stop()
		w.r.stats.exited(args[0], cmd.ProcessState, time.Since(start))
	}
	w.flushLogs()
	if err != nil {
		return commandError(ctx, "", stderr, err)
	}
	return nil
}

// command is a terraform command in the workspace with its whole
// environment; its stderr goes to the logs and (its first 64 KiB) to the
// returned buffer. Cancelling ctx interrupts it (SIGINT) and kills it after
// the grace period.
func (w *Workspace) command(ctx context.Context, args []string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, w.r.cfg.Binary, args...)
	cmd.Dir = w.Dir
	cmd.Env = w.env
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = w.r.cfg.GracePeriod
	dieWithParent(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(w.logs, &limited{w: &stderr, n: 64 << 10})
	return cmd, &stderr
}

// killOnForce kills cmd at once when the workspace's force context ends
// (a forced cancel: no grace period); the returned func stops watching.
func (w *Workspace) killOnForce(cmd *exec.Cmd) func() bool {
	if w.force == nil {
		return func() bool { return false }
	}
	return context.AfterFunc(w.force, func() { _ = cmd.Process.Kill() })
}

// ExitCode is the exit code of the Terraform command that failed with err,
// -1 when it was killed by a signal; ok is false when err did not come
// from a command's exit (it never started, or the failure is shardform's).
func ExitCode(err error) (code int, ok bool) {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), true
	}
	return 0, false
}

// commandError says why a command failed: Terraform's error diagnostics
// (msg), else its stderr, else the exit; a cancelled ctx is wrapped so
// errors.Is(err, context.Canceled) holds.
func commandError(ctx context.Context, msg string, stderr *bytes.Buffer, err error) error {
	if msg == "" {
		msg = strings.TrimSpace(stderr.String())
	}
	if msg == "" {
		msg = err.Error()
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s (%w)", msg, errors.Join(ctx.Err(), err))
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// flushLogs asks a logs writer that batches (the provision log writer
// does) to store what it holds: a command's lines are all stored when it
// ends.
func (w *Workspace) flushLogs() {
	if f, ok := w.logs.(interface{ Flush() }); ok {
		f.Flush()
	}
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// syncWriter serializes writes: a command's stdout and stderr are copied
// to the logs by two goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Flush passes a flush on to a writer that batches (see flushLogs).
func (s *syncWriter) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// limited keeps at most n bytes written to it.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
