package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/shardform/shardform/planner"
)

// checkOutput validates --output before a client command runs.
func (c *cli) checkOutput(cmd *cobra.Command) error {
	switch c.output {
	case "table", "json":
		return nil
	}
	return usageErr(cmd, "--output: must be table or json, got %q", c.output)
}

// jsonOut reports whether --output json was asked for.
func (c *cli) jsonOut() bool { return c.output == "json" }

// isTerminal reports whether f is an *os.File on a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// colour reports whether stdout may be coloured: a terminal and no NO_COLOR.
func (c *cli) colour() bool { return c.env("NO_COLOR") == "" && isTerminal(c.stdout) }

// paint wraps s in an ANSI colour code when colour is on.
func (c *cli) paint(code, s string) string {
	if !c.colour() {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// statusColour colours a status: green when done, red when failed, yellow
// while working.
func (c *cli) status(s string) string {
	switch s {
	case "applied", "planned", "succeeded", "ready", "running", "synced", "destroyed", "completed":
		return c.paint("32", s)
	case "failed", "cancelled", "unreachable", "errored":
		return c.paint("31", s)
	case "pending", "planning", "applying", "destroying", "queued", "cordoned", "deleting":
		return c.paint("33", s)
	}
	return s
}

// writeJSON prints the API's answer exactly as it came, ending in a newline.
func (c *cli) writeJSON(raw []byte) error {
	if _, err := c.stdout.Write(raw); err != nil {
		return err
	}
	if !bytes.HasSuffix(raw, []byte("\n")) {
		_, err := io.WriteString(c.stdout, "\n")
		return err
	}
	return nil
}

// table prints aligned columns: a header, then the rows.
func (c *cli) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields prints "key: value" lines aligned.
func (c *cli) fields(kv [][2]string) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 1, ' ', 0)
	for _, f := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	return tw.Flush()
}

// ids prints one id a line (--quiet).
func (c *cli) ids(ids []string) error {
	for _, id := range ids {
		if _, err := fmt.Fprintln(c.stdout, id); err != nil {
			return err
		}
	}
	return nil
}

// monthly renders a monthly price: "94.90 EUR/month".
func monthly(m planner.Money) string {
	if m.Currency == "" {
		return "-"
	}
	// Cents, half away from zero: a price for people, not the exact amount
	// (--output json has that).
	n := m.Nanos
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	cents := (n + 5_000_000) / 10_000_000
	return fmt.Sprintf("%s%d.%02d %s/month", sign, cents/100, cents%100, m.Currency)
}

// ago renders t relative to now: "just now", "3 min ago", "2 h ago",
// "5 days ago" (and "in 3 min" for the future).
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < 90*time.Minute:
		s = fmt.Sprintf("%d min", max(1, int(d.Round(time.Minute)/time.Minute)))
	case d < 36*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Round(time.Hour)/time.Hour))
	case d < 60*24*time.Hour:
		s = fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
	default:
		return t.UTC().Format("2006-01-02")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// dash is s, or "-" when empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// labels renders k=v pairs sorted by key.
func labelList(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// progress shows msg with a spinner on stderr while a wait lasts longer
// than a second, only when stderr is a terminal; stop clears it.
func (c *cli) progress(msg string) (stop func()) {
	if !isTerminal(c.stderr) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
		frames := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(c.stderr, "\r%s %s", frames[i%len(frames)], msg)
			select {
			case <-done:
				fmt.Fprintf(c.stderr, "\r\x1b[K")
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// prompt asks a question on stderr and reads one line of stdin (the
// terminal's, without echo when secret).
func (c *cli) prompt(question string, secret bool) (string, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.stderr, question)
		if secret {
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(c.stderr)
			if err != nil {
				return "", fmt.Errorf("read from the terminal: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		}
	}
	line, err := c.line()
	if err != nil {
		return "", err
	}
	return line, nil
}

// line reads one line of stdin (buffered across prompts).
func (c *cli) line() (string, error) {
	if c.lines == nil {
		c.lines = bufio.NewReader(c.stdin)
	}
	s, err := c.lines.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	return strings.TrimSpace(s), nil
}

// stdinTerminal reports whether stdin is a terminal (confirmations).
func (c *cli) stdinTerminal() bool { return isTerminal(c.stdin) }

// confirm asks y/N on the terminal; without --yes and without a terminal
// it is a usage error (a script must say --yes).
func (c *cli) confirm(cmd *cobra.Command, yes bool, question string) error {
	if err := c.canConfirm(cmd, yes); err != nil || yes {
		return err
	}
	answer, err := c.prompt(question+" [y/N] ", false)
	if err != nil {
		return err
	}
	if a := strings.ToLower(answer); a != "y" && a != "yes" {
		return errAborted
	}
	return nil
}

// errAborted: the confirmation was answered no.
var errAborted = errors.New("aborted: nothing was changed")

// canConfirm refuses, before anything is sent, a command that will need
// a confirmation it cannot ask for.
func (c *cli) canConfirm(cmd *cobra.Command, yes bool) error {
	if !yes && !c.stdinTerminal() {
		return usageErr(cmd, "%s: not a terminal to confirm on: pass --yes", cmd.CommandPath())
	}
	return nil
}

// pageFlags are a list command's --page and --limit (the API's page and
// limit; at most 100 a page).
type pageFlags struct{ page, limit int }

func (p *pageFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.page, "page", 1, "the page to list")
	cmd.Flags().IntVar(&p.limit, "limit", 100, "entries a page (at most 100)")
}

// query sets page (when not the first) and limit in q.
func (p *pageFlags) query(q url.Values) string {
	if p.page != 1 {
		q.Set("page", strconv.Itoa(p.page))
	}
	q.Set("limit", strconv.Itoa(p.limit))
	return q.Encode()
}

// listMeta is a list answer's meta.
type listMeta struct {
	Page  int   `json:"page"`
	Limit int   `json:"limit"`
	Total int64 `json:"total"`
}

// more says, after a table, that further pages exist.
func (c *cli) more(m listMeta, shown int) {
	if rest := m.Total - int64((m.Page-1)*m.Limit+shown); shown > 0 && rest > 0 {
		fmt.Fprintf(c.stdout, "%d more: --page %d\n", rest, m.Page+1)
	}
}
