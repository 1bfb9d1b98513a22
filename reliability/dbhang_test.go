package reliability

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/internal/testdb"
)

// TestDatabaseStopsAnswering puts the database behind a proxy that stops
// passing bytes, as a network partition or a hung server does: connections
// stay open and nothing comes back. Unlike a stopped server, nothing fails
// fast, so only the broker's own timeouts can end the requests. Each must
// end in 503 with Retry-After within the request's write timeout, and once
// the database answers again the same saves succeed, with every asset
// recorded once.
func TestDatabaseStopsAnswering(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	u.Host = proxy.Addr()
	e := startEmulator(t)
	const writeTimeout = 3 * time.Second
	s := startInProcess(t, u.String(), e, 10*time.Second, func(d *httpapi.Deps) {
		d.ReadTimeout, d.WriteTimeout = writeTimeout, writeTimeout
	})
	view := openView(t, dbURL)
	c := newClient(t, 30*time.Second, true)

	const n = 8
	evs := prepareEvidence(t, s.URL, n+1, 4)
	if r, err := postJSON(c, s.URL+"/save-metadata", evs[n].tok, evs[n].body); err != nil || r.Status != http.StatusCreated {
		t.Fatalf("save through the proxy: %v %v", r, err)
	}

	proxy.freeze()
	type result struct {
		r    reply
		err  error
		took time.Duration
	}
	results := make([]result, n+1)
	var wg sync.WaitGroup
	for i := range n + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			var r reply
			var err error
			if i == n {
				r, err = get(c, s.URL+"/readyz", "")
			} else {
				r, err = postJSON(c, s.URL+"/save-metadata", evs[i].tok, evs[i].body)
			}
			results[i] = result{r, err, time.Since(began)}
		}()
	}
	wg.Wait()
	proxy.unfreeze()

	var slowest time.Duration
	for i, res := range results {
		slowest = max(slowest, res.took)
		switch {
		case res.err != nil:
			t.Errorf("request %d while the database hung: no answer after %s: %v", i, res.took, res.err)
		case res.r.Status != http.StatusServiceUnavailable || res.r.code() != "unavailable" || res.r.Header.Get("Retry-After") == "":
			t.Errorf("request %d while the database hung: %s after %s, want 503 unavailable with Retry-After", i, res.r, res.took)
		case res.took > writeTimeout+2*time.Second:
			// Not a performance bound: past the write deadline the answer
			// can no longer be written at all.
			t.Errorf("request %d answered after %s, past its %s write timeout", i, res.took, writeTimeout)
		}
	}

	// Recovered: the same saves now succeed. A save answered 503 may still
	// have reached the database once the bytes held in the partition got
	// through; then the retry finds it (200), and nothing is doubled.
	late := 0
	waitFor(t, "readiness back", 30*time.Second, func() bool {
		r, err := get(c, s.URL+"/readyz", "")
		return err == nil && r.Status == http.StatusOK
	})
	for i := range n {
		r, err := postJSON(c, s.URL+"/save-metadata", evs[i].tok, evs[i].body)
		switch {
		case err != nil || (r.Status != http.StatusCreated && r.Status != http.StatusOK):
			t.Errorf("save %d after the database came back: %v %v", i, r, err)
		case r.Status == http.StatusOK:
			late++
		}
	}
	recs := view.records(t, "cloudinary")
	if len(recs) != n+1 {
		t.Errorf("%d records, want %d", len(recs), n+1)
	}
	t.Logf("database hung under %d saves and a readiness check: all answered 503 with Retry-After, the slowest after %s (write timeout %s); after recovery %d saves succeeded (%d had been written late, after their 503); %d records",
		n, slowest.Round(time.Millisecond), writeTimeout, n, late, len(recs))
}
