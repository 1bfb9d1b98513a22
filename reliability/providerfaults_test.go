package reliability

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/internal/testdb"
)

// providerFault is one way the provider misbehaves.
type providerFault struct {
	name     string
	faults   emulator.Faults  // the emulator's own switches
	override http.HandlerFunc // or an answer the emulator cannot give
}

// providerTimeout bounds the in-process broker's provider calls here; the
// slow fault waits longer than that.
const providerTimeout = time.Second

var providerFaults = []providerFault{
	{name: "slower than the timeout", faults: emulator.Faults{Delay: 3 * providerTimeout}},
	{name: "500", faults: emulator.Faults{FailStatus: http.StatusInternalServerError}},
	{name: "503", faults: emulator.Faults{FailStatus: http.StatusServiceUnavailable}},
	{name: "429", faults: emulator.Faults{FailStatus: http.StatusTooManyRequests}},
	{name: "connection closed", faults: emulator.Faults{CloseConn: true}},
	{name: "200 with an HTML page", override: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Service temporarily unavailable</body></html>"))
	}},
	{name: "200 with truncated JSON", override: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"public_id":"uploads/alice/x","version":17`))
	}},
	{name: "headers, then a stalled body", override: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write([]byte(`{"public_id":`))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(3 * providerTimeout):
		}
	}},
}

// TestProviderFaults makes the provider slow, failing, closing connections
// and answering garbage, for every endpoint that calls it: the broker must
// answer 502 provider_unavailable within its timeout, record nothing (and
// delete nothing), recover once the provider does, and leave no goroutine
// behind.
func TestProviderFaults(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	e := startEmulator(t)
	s := startInProcess(t, dbURL, e, providerTimeout)
	view := openView(t, dbURL)
	c := newClient(t, 30*time.Second, true)
	alice := token(t, "alice")

	// What the faulty calls are about: assets alice uploaded but did not
	// save (proving them needs the provider), and saved ones to delete.
	type op struct {
		name string
		do   func() (reply, error)
	}
	const perOp = 3
	var pendingCld, pendingUC []string
	for range perOp {
		ev := mustUploadCloudinary(t, s.URL, alice)
		pendingCld = append(pendingCld, fmt.Sprintf(`{"public_id":%q,"resource_type":"image"}`, field(ev, "public_id")))
		pendingUC = append(pendingUC, fmt.Sprintf(`{"uuid":%q}`, mustUploadUploadcare(t, s.URL, alice)))
	}
	var savedCld, savedUC []string
	for range perOp {
		r, err := postJSON(c, s.URL+"/save-metadata", alice, mustUploadCloudinary(t, s.URL, alice))
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("setup: %v %v", r, err)
		}
		savedCld = append(savedCld, r.Body["file"].(map[string]any)["id"].(string))
		r, err = postJSON(c, s.URL+"/save-metadata", alice, fmt.Sprintf(`{"uuid":%q}`, mustUploadUploadcare(t, s.URL, alice)))
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("setup: %v %v", r, err)
		}
		savedUC = append(savedUC, r.Body["file"].(map[string]any)["id"].(string))
	}
	upload := func() (reply, error) {
		body, ct := multipartBody(map[string]string{"fileName": "cat.png"}, "file", pngBytes)
		return send(c, newRequest(http.MethodPost, s.URL+"/upload", alice, body, "Content-Type", ct))
	}
	var ops []op
	for i := range perOp {
		ops = append(ops,
			op{"Cloudinary save proven by the Admin API", func() (reply, error) { return postJSON(c, s.URL+"/save-metadata", alice, pendingCld[i]) }},
			op{"Uploadcare save proven by the REST API", func() (reply, error) { return postJSON(c, s.URL+"/save-metadata", alice, pendingUC[i]) }},
			op{"server-side upload", upload},
			op{"delete of a Cloudinary file", func() (reply, error) {
				return send(c, newRequest(http.MethodDelete, s.URL+"/files/"+savedCld[i], alice, nil))
			}},
			op{"delete of an Uploadcare file", func() (reply, error) {
				return send(c, newRequest(http.MethodDelete, s.URL+"/files/"+savedUC[i], alice, nil))
			}},
		)
	}

	// The baseline is taken with the broker warmed up (pools, transports)
	// and every idle connection closed.
	closeIdle := func() {
		c.CloseIdleConnections()
		s.providerHTTP.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
	}
	closeIdle()
	baseline := settledGoroutines(0)
	before := view.snapshot(t)

	requests := 0
	for _, f := range providerFaults {
		e.SetFaults(f.faults)
		e.setOverride(f.override)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, o := range ops {
			wg.Add(1)
			go func() {
				defer wg.Done()
				began := time.Now()
				r, err := o.do()
				took := time.Since(began)
				mu.Lock()
				defer mu.Unlock()
				requests++
				switch {
				case err != nil:
					t.Errorf("%s, provider %s: no answer after %s: %v", o.name, f.name, took, err)
				case r.Status != http.StatusBadGateway || r.code() != "provider_unavailable":
					t.Errorf("%s, provider %s: %s, want 502 provider_unavailable", o.name, f.name, r)
				case took > 10*providerTimeout:
					// Not a performance bound: a call that outlives its
					// timeout tenfold is not bounded by it at all.
					t.Errorf("%s, provider %s: answered after %s with a %s provider timeout", o.name, f.name, took, providerTimeout)
				}
			}()
		}
		wg.Wait()
		if after := view.snapshot(t); after != before {
			t.Errorf("provider %s: the database changed: %+v, before %+v", f.name, after, before)
		}
	}
	e.SetFaults(emulator.Faults{})
	e.setOverride(nil)

	closeIdle()
	if n := settledGoroutines(baseline); n > baseline {
		var stacks bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		t.Errorf("%d goroutines after the faults, %d before:\n%s", n, baseline, stacks.String())
	}

	// The provider is back: the same requests now succeed.
	for _, o := range ops {
		r, err := o.do()
		if err != nil || r.Status >= 300 {
			t.Errorf("%s after the provider recovered: %v %v", o.name, r, err)
		}
	}
	t.Logf("%d faults × %d operations: %d requests answered 502 with nothing recorded; %d goroutines before and after",
		len(providerFaults), len(ops), requests, baseline)
}

// settledGoroutines waits (up to 10 s) for the goroutine count to come down
// to want, and returns it; with want 0 it waits for the count to stop
// changing.
func settledGoroutines(want int) int {
	deadline := time.Now().Add(10 * time.Second)
	last := -1
	for {
		runtime.GC()
		n := countGoroutines()
		if (want > 0 && n <= want) || (want == 0 && n == last) || time.Now().After(deadline) {
			return n
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
}

// countGoroutines counts goroutines but pgx's background readers: pgconn
// parks one on a pooled connection after some writes until that
// connection's next message, so there are at most as many as pooled
// connections whatever the number of requests; a leak grows with them.
func countGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && !strings.Contains(g, "pgconn/internal/bgreader") {
			count++
		}
	}
	return count
}
