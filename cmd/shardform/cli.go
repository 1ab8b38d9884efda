package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes: 0 done (or usage asked for), 1 failed, 2 wrong usage.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// errHelpShown: --help printed the usage; the command exits 0 and does nothing else.
var errHelpShown = errors.New("help shown")

// usageError is a wrong flag or argument: printed with the usage, exit 2.
type usageError struct {
	msg, usage string
}

func (e *usageError) Error() string { return e.msg }

// newFlags is a subcommand's flag set: std flag, no output of its own (parse
// decides where usage goes), and a usage text of synopsis then every flag.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usageText(fs, synopsis)) }
	return fs
}

func usageText(fs *flag.FlagSet, synopsis string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(synopsis, "\n") + "\n")
	var n int
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nFlags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return b.String()
}

// parseFlags parses args: --help prints the usage to stdout and answers
// errHelpShown; a bad flag or a stray argument is a *usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis string) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usageText(fs, synopsis))
		return errHelpShown
	case err != nil:
		return &usageError{msg: fs.Name() + ": " + err.Error(), usage: usageText(fs, synopsis)}
	case fs.NArg() > 0:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0)), usage: usageText(fs, synopsis)}
	}
	return nil
}

// exitCode prints err (with the usage for a usage error) and says how to exit.
func exitCode(err error, stderr io.Writer) int {
	var uerr *usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "shardform: %s\n\n%s", uerr.msg, uerr.usage)
		return exitUsage
	}
	fmt.Fprintln(stderr, "shardform:", err)
	return exitFail
}
