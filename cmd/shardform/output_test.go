package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardform/shardform/planner"
)

func TestRelativeTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now.Add(-10 * time.Second), "just now"},
		{now.Add(-3*time.Minute - 10*time.Second), "3 min ago"},
		{now.Add(-80 * time.Minute), "80 min ago"},
		{now.Add(-5 * time.Hour), "5 h ago"},
		{now.Add(-50 * time.Hour), "2 days ago"},
		{now.Add(-90 * 24 * time.Hour), "2026-09-04"},
		{now.Add(4 * time.Minute), "in 4 min"},
	} {
		if got := ago(tc.at, now); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.at, got, tc.want)
		}
	}
}

func TestMonthly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		amount, currency, want string
	}{
		{"94.9", "EUR", "94.90 EUR/month"},
		{"3.163333333", "EUR", "3.16 EUR/month"},
		{"6.326666667", "EUR", "6.33 EUR/month"},
		{"0.005", "USD", "0.01 USD/month"},
		{"0", "EUR", "0.00 EUR/month"},
	} {
		m, err := planner.ParseMoney(tc.amount, tc.currency)
		if err != nil {
			t.Fatal(err)
		}
		if got := monthly(m); got != tc.want {
			t.Errorf("monthly(%s %s) = %q, want %q", tc.amount, tc.currency, got, tc.want)
		}
	}
	if got := monthly(planner.Money{}); got != "-" {
		t.Errorf("no price: %q", got)
	}
}

// TestColourOnlyOnATerminal: a pipe or a buffer gets no escape codes, and
// NO_COLOR turns them off on a terminal too.
func TestColourOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, out := range []io.Writer{&bytes.Buffer{}, w} {
		c := newCLI(cmdEnv(nil), strings.NewReader(""), out, &bytes.Buffer{})
		if c.colour() || c.status("failed") != "failed" {
			t.Errorf("colour on %T", out)
		}
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if c := newCLI(cmdEnv(map[string]string{"NO_COLOR": "1"}), strings.NewReader(""), tty, tty); c.colour() {
			t.Error("colour with NO_COLOR")
		}
		if c := newCLI(cmdEnv(nil), strings.NewReader(""), tty, tty); !c.colour() || c.status("failed") != "\x1b[31mfailed\x1b[0m" {
			t.Error("no colour on a terminal")
		}
	}
	// No spinner without a terminal: stop returns at once, nothing written.
	var errOut bytes.Buffer
	c := newCLI(cmdEnv(nil), strings.NewReader(""), &bytes.Buffer{}, &errOut)
	stop := c.progress("waiting")
	time.Sleep(10 * time.Millisecond)
	stop()
	if errOut.Len() > 0 {
		t.Errorf("progress without a terminal: %q", errOut.String())
	}
}

// TestGoStyleFlags: -addr and -help of earlier versions still parse; a
// value or an argument after -- is left alone.
func TestGoStyleFlags(t *testing.T) {
	t.Parallel()
	root := newCLI(cmdEnv(nil), strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}).root()
	got := longFlags(root, []string{"serve", "-addr", ":1", "-help", "-h", "-q", "--cpu", "-1", "-nosuchflag", "--", "-addr"})
	want := []string{"serve", "--addr", ":1", "--help", "-h", "-q", "--cpu", "-1", "-nosuchflag", "--", "-addr"}
	if !slices.Equal(got, want) {
		t.Errorf("longFlags\n got %q\nwant %q", got, want)
	}
}

// TestFollowRunWithoutEndEvent: a log stream that stays open after its run
// ended (the server missed the wake-up) does not hang the client: at the
// next heartbeat it reads the run, then the lines it had not been sent.
func TestFollowRunWithoutEndEvent(t *testing.T) {
	t.Parallel()
	const id = "11111111-1111-4111-8111-111111111111"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/runs/"+id+"/logs" && r.URL.Query().Get("follow") == "1":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "id: 1\nevent: log\ndata: {\"id\":1,\"text\":\"Creating...\"}\n\n")
			w.(http.Flusher).Flush()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
					fmt.Fprint(w, ": heartbeat\n\n")
					w.(http.Flusher).Flush()
				}
			}
		case r.URL.Path == "/v1/runs/"+id+"/logs" && r.URL.Query().Get("after") == "1":
			fmt.Fprint(w, `{"data":[{"id":2,"text":"Apply complete!"}],"running":false}`)
		case r.URL.Path == "/v1/runs/"+id:
			fmt.Fprint(w, `{"id":"`+id+`","kind":"apply","status":"succeeded"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newCLI(cmdEnv(nil), strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := c.followRun(ctx, &apiClient{base: srv.URL, http: srv.Client()}, id, &out)
	if err != nil || r.Status != "succeeded" || out.String() != "Creating...\nApply complete!\n" {
		t.Errorf("followRun: %+v %v\n%s", r, err, out.String())
	}
}
