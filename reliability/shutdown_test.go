package reliability

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/internal/testdb"
)

// notAccepted tells the errors of a request the server never took on: the
// listener was closed (refused), or the kernel had queued the connection
// but the server closed its listener before accepting it (reset, EOF).
func notAccepted(err error) bool {
	return isConnRefused(err) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "server closed")
}

// TestShutdownUnderLoad sends SIGTERM to the broker while saves run, some
// of them slow because the provider is: every request the broker accepted
// must complete with its normal answer (and be in the database), requests
// after that must be refused at the connection, never answered with an
// error, and the process must exit 0.
func TestShutdownUnderLoad(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	e := startEmulator(t)
	b := startBroker(t, brokerEnv(dbURL, e))
	view := openView(t, dbURL)

	const fast, slow, workers = 200, 8, 4
	evs := prepareEvidence(t, b.URL, fast+slow, 8)
	// A connection per request: after SIGTERM the closed listener refuses
	// new ones, where a kept-alive connection would blur the line between
	// accepted and not.
	c := newClient(t, 60*time.Second, false)

	// The slow saves are the three fields, proven by the Admin API, which
	// now answers after 1.5 s: they are certainly in flight at SIGTERM.
	e.SetFaults(emulator.Faults{Delay: 1500 * time.Millisecond})
	apiBefore := e.apiRequests.Load()
	type outcome struct {
		publicID string
		status   int
		err      error
	}
	slowOut := make(chan outcome, slow)
	for _, ev := range evs[fast:] {
		go func() {
			body := fmt.Sprintf(`{"public_id":%q,"resource_type":"image"}`, ev.publicID)
			r, err := postJSON(c, b.URL+"/save-metadata", ev.tok, body)
			slowOut <- outcome{ev.publicID, r.Status, err}
		}()
	}
	waitFor(t, "the slow saves to reach the provider", 30*time.Second, func() bool { return e.apiRequests.Load() >= apiBefore+slow })

	// The fast load: signed saves, each evidence once, until the broker
	// refuses connections.
	var (
		mu        sync.Mutex
		fastOut   []outcome
		next      atomic.Int64
		answered  atomic.Int64
		refusedAt = make(chan struct{})
		once      sync.Once
	)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= fast {
					return
				}
				ev := evs[i]
				r, err := postJSON(c, b.URL+"/save-metadata", ev.tok, ev.body)
				mu.Lock()
				fastOut = append(fastOut, outcome{ev.publicID, r.Status, err})
				mu.Unlock()
				if err != nil {
					once.Do(func() { close(refusedAt) })
					return
				}
				answered.Add(1)
			}
		}()
	}
	waitFor(t, "some fast saves", 30*time.Second, func() bool { return answered.Load() >= 20 })
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	wg.Wait()

	select {
	case <-b.Done():
	case <-time.After(45 * time.Second):
		t.Fatalf("the broker did not exit within 45 s of SIGTERM:\n%s", b.Output())
	}
	if code := b.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM:\n%s", code, b.Output())
	}
	exited := time.Since(signalled)

	recorded := view.records(t, "cloudinary")
	completedSlow := 0
	for range slow {
		o := <-slowOut
		switch {
		case o.err != nil:
			t.Errorf("slow save in flight at SIGTERM got no answer: %v", o.err)
		case o.status != http.StatusCreated:
			t.Errorf("slow save in flight at SIGTERM answered %d", o.status)
		case recorded[o.publicID] == "":
			t.Errorf("slow save %s answered 201 but is not recorded", o.publicID)
		default:
			completedSlow++
		}
	}
	ok, refused := 0, 0
	for _, o := range fastOut {
		switch {
		case o.err != nil && notAccepted(o.err):
			refused++
			if recorded[o.publicID] != "" {
				t.Errorf("save %s lost its answer (%v) but was recorded: an accepted request was dropped", o.publicID, o.err)
			}
		case o.err != nil:
			t.Errorf("save %s: %v", o.publicID, o.err)
		case o.status != http.StatusCreated:
			t.Errorf("save %s during shutdown answered %d", o.publicID, o.status)
		case recorded[o.publicID] == "":
			t.Errorf("save %s answered 201 but is not recorded", o.publicID)
		default:
			ok++
		}
	}
	if refused == 0 {
		t.Errorf("no request was refused after SIGTERM: the load did not overlap the shutdown")
	}
	if len(recorded) != ok+completedSlow {
		t.Errorf("%d records, %d saves answered 201", len(recorded), ok+completedSlow)
	}
	if !strings.Contains(b.Output(), "shutting down") {
		t.Errorf("no shutdown line in the log:\n%s", b.Output())
	}
	if testing.Verbose() {
		lines := strings.Split(strings.TrimSpace(b.Output()), "\n")
		t.Log(strings.Join(lines[max(0, len(lines)-14):], "\n"))
	}
	t.Logf("SIGTERM with %d slow saves in flight and %d workers of fast saves: %d slow and %d fast saves completed and recorded, %d refused at the connection afterwards; exit 0 after %s",
		slow, workers, completedSlow, ok, refused, exited.Round(time.Millisecond))
}
