package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shardform/shardform/store"
)

// The tests here play the worker's part with the worker's own statements
// (store.AppendProvisionLog for each chunk of output, store.SetProvisionStatus
// at the end) on a request whose plan job is queued but taken by no worker:
// the run lasts exactly as long as the test needs.

// logListenerName is the application_name of the provisioning service's
// LISTEN connection (provision.feedApplicationName).
const logListenerName = "shardform provision log listener"

// sseEvent is one Server-Sent Event, or one comment line.
type sseEvent struct {
	id, name, data, comment string
}

type sseReader struct{ r *bufio.Reader }

// next returns the next event or comment.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
			ev.comment = strings.TrimSpace(strings.TrimPrefix(line, ":"))
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// nextEvent skips comments (heartbeats).
func (s *sseReader) nextEvent() (sseEvent, error) {
	for {
		ev, err := s.next()
		if err != nil || ev.name != "" {
			return ev, err
		}
	}
}

// logText is the text of a "log" event.
func (e sseEvent) logText() string {
	var l struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal([]byte(e.data), &l)
	return l.Text
}

// follow opens a live log stream; it answers as soon as the stream is open,
// before any line.
func follow(t *testing.T, ctx context.Context, client *http.Client, base, token, id string, after int64) (*http.Response, *sseReader) {
	t.Helper()
	url := base + "/v1/provision/" + id + "/logs?follow=1"
	if after > 0 {
		url += "&after=" + strconv.FormatInt(after, 10)
	}
	hr, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("follow: status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return resp, &sseReader{r: bufio.NewReader(resp.Body)}
}

// runningRequest creates a request and queues its plan, which no worker
// takes: it stays planning.
func (b *bundle) runningRequest(a account, name string) string {
	b.t.Helper()
	id := b.expect(req{method: "POST", path: "/v1/provision", token: a.access, body: localBody(name)}, 201).str("id")
	b.expect(req{method: "POST", path: "/v1/provision/" + id + "/plan", token: a.access}, 202)
	return id
}

// appendLog stores a chunk of output as the worker's log writer does.
func (b *bundle) appendLog(id, chunk string) {
	b.t.Helper()
	err := store.New().AppendProvisionLog(context.Background(), b.pool, store.AppendProvisionLogParams{ProvisionID: uuid.MustParse(id), Operation: "plan", Chunk: chunk})
	if err != nil {
		b.t.Fatal(err)
	}
}

// setStatus ends the run as the worker does.
func (b *bundle) setStatus(a account, id, status, msg string) {
	b.t.Helper()
	err := store.New().SetProvisionStatus(context.Background(), b.pool, store.SetProvisionStatusParams{
		OrganizationID: uuid.MustParse(a.orgID), ID: uuid.MustParse(id), Status: status, Error: msg})
	if err != nil {
		b.t.Fatal(err)
	}
}

// dbConnections counts the open connections to the test's database, and
// among them the log listener's.
func (b *bundle) dbConnections() (all, listeners int) {
	b.t.Helper()
	err := b.pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE application_name = $1)
		FROM pg_stat_activity WHERE datname = current_database()`, logListenerName).Scan(&all, &listeners)
	if err != nil {
		b.t.Fatal(err)
	}
	return all, listeners
}

// warmPool opens every connection the pool may hold, so the pool's own
// growth does not count as a follower's connection.
func (b *bundle) warmPool() {
	b.t.Helper()
	ctx := context.Background()
	n := int(b.pool.Config().MaxConns)
	for b.pool.Stat().TotalConns() < int32(n) {
		conns := make([]interface{ Release() }, 0, n)
		for range n {
			c, err := b.pool.Acquire(ctx)
			if err != nil {
				b.t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Release()
		}
	}
}

// TestProvisionLogsFollowersLeave: 100 clients follow a running request's
// log, receive its lines through the one shared listener connection, and
// leave before the run ends. Their goroutines and database connections are
// all released while the run goes on: a heartbeat finds each closed stream.
func TestProvisionLogsFollowersLeave(t *testing.T) {
	// Not parallel: it counts the whole process's goroutines.
	const followers = 100
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true, followHeartbeat: 100 * time.Millisecond})
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	id := b.runningRequest(a, "web-1")
	b.appendLog(id, "line 1\n")

	b.warmPool()
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	baseGoroutines := runtime.NumGoroutine()
	baseConns, baseListeners := b.dbConnections()
	if baseListeners != 0 {
		t.Fatalf("%d log listeners before any follower", baseListeners)
	}

	seen := [2]chan int{make(chan int, followers), make(chan int, followers)}
	problems := make(chan string, 2*followers)
	cancels := make([]context.CancelFunc, followers)
	var wg sync.WaitGroup
	for i := range followers {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		resp, events := follow(t, ctx, client, base, a.access, id, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			for {
				ev, err := events.nextEvent()
				if err != nil {
					if ctx.Err() == nil {
						problems <- "follower " + strconv.Itoa(i) + ": " + err.Error()
					}
					return
				}
				switch {
				case ev.name == "log" && ev.logText() == "line 1\n":
					seen[0] <- i
				case ev.name == "log" && ev.logText() == "line 2\n":
					seen[1] <- i
				default:
					problems <- "follower " + strconv.Itoa(i) + ": unexpected event " + ev.name + " " + ev.data
				}
			}
		}()
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	waitSeen := func(which int) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for range followers {
			select {
			case <-seen[which]:
			case p := <-problems:
				t.Fatal(p)
			case <-timeout:
				t.Fatalf("not every follower received line %d", which+1)
			}
		}
	}
	waitSeen(0)
	b.appendLog(id, "line 2\n") // reaches every follower through the listener
	waitSeen(1)
	if all, listeners := b.dbConnections(); listeners != 1 || all > baseConns+1 {
		t.Errorf("with %d followers: %d database connections (%d before), %d of them log listeners; want one shared listener",
			followers, all, baseConns, listeners)
	}
	if g := runtime.NumGoroutine(); g < baseGoroutines+followers {
		t.Errorf("%d goroutines with %d followers, %d before: the count does not see the streams", g, followers, baseGoroutines)
	}

	// Every client leaves mid-run; nothing is written to the log after.
	for _, cancel := range cancels {
		cancel()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the followers' readers did not stop")
	}
	select {
	case p := <-problems:
		t.Fatal(p)
	default:
	}
	tr.CloseIdleConnections()

	deadline := time.Now().Add(90 * time.Second)
	for {
		g := runtime.NumGoroutine()
		all, listeners := b.dbConnections()
		if g <= baseGoroutines && all <= baseConns && listeners == 0 {
			break
		}
		if time.Now().After(deadline) {
			var dump bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("after the followers left: %d goroutines (%d before), %d database connections (%d before), %d log listeners\n%s",
				g, baseGoroutines, all, baseConns, listeners, dump.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := b.expect(req{method: "GET", path: "/v1/provision/" + id, token: a.access}, 200).str("status"); s != "planning" {
		t.Fatalf("the run ended (%s): the followers did not leave mid-run", s)
	}
}

// TestProvisionLogsFollowLive: a follower receives each line as it is
// stored, then the end event with the final status. The heartbeat is an
// hour, so only the notifications can wake the stream.
func TestProvisionLogsFollowLive(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true, followHeartbeat: time.Hour})
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	id := b.runningRequest(a, "web-1")
	client := &http.Client{Transport: &http.Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The stream is open before the first line exists.
	resp, events := follow(t, ctx, client, base, a.access, id, 0)
	defer resp.Body.Close()
	var ids []int64
	for i := 1; i <= 3; i++ {
		line := "line " + strconv.Itoa(i) + "\n"
		b.appendLog(id, line)
		ev, err := events.nextEvent()
		if err != nil {
			t.Fatalf("waiting for %q: %v", line, err)
		}
		if ev.name != "log" || ev.logText() != line {
			t.Fatalf("after storing %q: event %q %s", line, ev.name, ev.data)
		}
		n, err := strconv.ParseInt(ev.id, 10, 64)
		if err != nil || (len(ids) > 0 && n <= ids[len(ids)-1]) {
			t.Fatalf("event id %q after %v", ev.id, ids)
		}
		ids = append(ids, n)
	}
	b.setStatus(a, id, "failed", "provider said no")
	ev, err := events.nextEvent()
	if err != nil || ev.name != "end" {
		t.Fatalf("after the run ended: event %q %s, %v", ev.name, ev.data, err)
	}
	var end map[string]any
	if err := json.Unmarshal([]byte(ev.data), &end); err != nil || end["status"] != "failed" || end["error"] != "provider said no" {
		t.Fatalf("end event %s (%v)", ev.data, err)
	}
	if ev, err := events.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end event: %+v, %v; want the end of the stream", ev, err)
	}

	// Resuming after the second line gives the third and the end at once.
	resp2, events2 := follow(t, ctx, client, base, a.access, id, ids[1])
	defer resp2.Body.Close()
	if ev, err := events2.nextEvent(); err != nil || ev.name != "log" || ev.logText() != "line 3\n" {
		t.Fatalf("resumed stream: event %q %s, %v", ev.name, ev.data, err)
	}
	if ev, err := events2.nextEvent(); err != nil || ev.name != "end" {
		t.Fatalf("resumed stream: event %q %s, %v; want end", ev.name, ev.data, err)
	}
}

// followRunning starts a request that no worker runs, stores one line of
// its log and follows it: the stream's first event, that line, is read.
// The stream ends with the test.
func followRunning(t *testing.T) (*bundle, string, *sseReader) {
	t.Helper()
	b := setup(t, setupOpts{provisioning: true, externalWorkers: true, followHeartbeat: time.Hour})
	a := b.bootstrap("ops@example.com")
	base := b.listen()
	id := b.runningRequest(a, "web-1")
	b.appendLog(id, "line 1\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	resp, events := follow(t, ctx, &http.Client{Transport: &http.Transport{}}, base, a.access, id, 0)
	t.Cleanup(func() { resp.Body.Close() })
	if ev, err := events.nextEvent(); err != nil || ev.name != "log" {
		t.Fatalf("first event %q %s, %v", ev.name, ev.data, err)
	}
	return b, id, events
}

// TestProvisionLogsFollowRequestDeleted: when the followed request
// disappears (its organization is deleted), the stream says so with an
// error event carrying the status a request would get, and ends.
func TestProvisionLogsFollowRequestDeleted(t *testing.T) {
	t.Parallel()
	b, id, events := followRunning(t)
	if _, err := b.pool.Exec(context.Background(), "DELETE FROM provision_requests WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	ev, err := events.nextEvent()
	if err != nil || ev.name != "error" {
		t.Fatalf("after the deletion: event %q %s, %v; want error", ev.name, ev.data, err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(ev.data), &body); err != nil || body["status"] != float64(404) || body["error"] != "provision request not found" {
		t.Fatalf("error event %s (%v)", ev.data, err)
	}
	if ev, err := events.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the error event: %+v, %v; want the end of the stream", ev, err)
	}
}

// TestProvisionLogsFollowShutdown: shutting the server down ends the open
// streams, so the shutdown completes instead of waiting for the run.
func TestProvisionLogsFollowShutdown(t *testing.T) {
	t.Parallel()
	b, _, events := followRunning(t)
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := b.srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with a follower: %v", err)
	}
	if ev, err := events.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after shutdown: %+v, %v; want the end of the stream", ev, err)
	}
	// With its last follower gone, the listener connection closes.
	deadline := time.Now().Add(30 * time.Second)
	for _, listeners := b.dbConnections(); listeners > 0; _, listeners = b.dbConnections() {
		if time.Now().After(deadline) {
			t.Fatalf("%d log listeners after the shutdown", listeners)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
