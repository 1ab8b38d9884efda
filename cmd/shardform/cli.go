package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, the same for every command (shardform --help and the README
// list them).
const (
	exitOK       = 0 // done (or the help asked for)
	exitFail     = 1 // the API refused or failed, or anything else went wrong
	exitUsage    = 2 // a wrong command line (or a confirmation needed and no terminal to ask)
	exitNotFound = 3 // the API answered 404
	exitAuth     = 4 // the API answered 401 or 403: log in again, or ask for the permission
)

// exitRefused: node refresh's token was refused (the node was deleted).
// It predates the client's codes and bootstrap.sh shares it, so it stays 3.
const exitRefused = 3

// usageError is a wrong flag or argument: printed with the usage, exit 2.
type usageError struct {
	msg, usage string
}

func (e *usageError) Error() string { return e.msg }

// usageErr is a usage error of cmd, its usage text attached.
func usageErr(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), usage: cmd.UsageString()}
}

// apiError is an answer of the API other than 2xx: its status and its
// {"error": "..."} message.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("the API answered %d: %s", e.Status, e.Message) }

// exitCode prints err (with the usage for a usage error, the API's message
// alone for an API error) as one line and says how to exit.
func exitCode(err error, stderr io.Writer) int {
	var uerr *usageError
	var aerr *apiError
	var refused *errRefused
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "shardform: %s\n\n%s", uerr.msg, uerr.usage)
		return exitUsage
	case errors.As(err, &refused):
		fmt.Fprintln(stderr, "shardform:", err)
		return exitRefused
	case errors.As(err, &aerr):
		fmt.Fprintln(stderr, "shardform:", aerr.Message)
		switch aerr.Status {
		case http.StatusNotFound:
			return exitNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			return exitAuth
		}
		return exitFail
	}
	fmt.Fprintln(stderr, "shardform:", oneLine(err.Error()))
	return exitFail
}

// oneLine folds a message's whitespace so it prints as one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cli is one command line's world: its environment and streams, and the
// clock and HTTP client the client commands use (tests replace the clock).
type cli struct {
	env            func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
	http           *http.Client
	lines          *bufio.Reader // stdin, once a prompt read from it

	// Global flags of the client commands.
	url, org string
	output   string
	quiet    bool
}

func newCLI(env func(string) string, stdin io.Reader, stdout, stderr io.Writer) *cli {
	c := &cli{env: env, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now, http: &http.Client{}}
	if v := env("SHARDFORM_CLI_NOW"); v != "" {
		// A fixed clock for golden output (tests only set it).
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			c.now = func() time.Time { return t }
		}
	}
	return c
}

// execute runs one command line and answers its error.
func (c *cli) execute(ctx context.Context, args []string) error {
	root := c.root()
	if len(args) == 0 {
		args = []string{"serve"}
	}
	root.SetArgs(longFlags(root, args))
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	return root.ExecuteContext(ctx)
}

// run runs one command line and answers the exit code.
func run(ctx context.Context, args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	return exitCode(newCLI(env, stdin, stdout, stderr).execute(ctx, args), stderr)
}

// longFlags rewrites Go-style single-dash long flags (-addr, -help) that
// earlier versions accepted into pflag's --addr: a word is rewritten only
// when it names a long flag of some command, before a "--".
func longFlags(root *cobra.Command, args []string) []string {
	names := map[string]bool{"help": true}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { names[f.Name] = true }
		c.LocalFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && names[name] {
				out[i] = "-" + a
			}
		}
	}
	return out
}

// noArgs refuses any positional argument as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr(cmd, "%s: unexpected argument %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// exactArgs wants n arguments, named in the usage line.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return usageErr(cmd, "%s: wants %d argument(s): %s", cmd.CommandPath(), n, cmd.Use)
		case len(args) > n:
			return usageErr(cmd, "%s: unexpected argument %q", cmd.CommandPath(), args[n])
		}
		return nil
	}
}

// group is a command that only holds subcommands: without one, or with
// an unknown one, it is a usage error (cobra would print the help and exit 0).
func group(use, short, noun string) *cobra.Command {
	return &cobra.Command{
		Use: use, Short: short,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr(cmd, "%s: a subcommand is required", cmd.Name())
			}
			return usageErr(cmd, "%s: unknown %s %q", cmd.Name(), noun, args[0])
		},
	}
}

// stringList is a repeatable flag that also splits on commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Type() string { return "strings" }

func (l *stringList) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
