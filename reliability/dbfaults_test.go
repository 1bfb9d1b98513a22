//go:build unix

package reliability

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/testdb"
)

// TestDatabaseStopsDuringSaves stops the broker's PostgreSQL twice while
// saves run (a fast shutdown, then an immediate one, as a crash), and
// starts it again. The broker must answer 503 with Retry-After while the
// database is away (never 500, never hang), report not ready, recover by
// itself, and every save that was answered 2xx must be in the database
// exactly once.
func TestDatabaseStopsDuringSaves(t *testing.T) {
	cluster := testdb.NewCluster(t)
	dbURL := cluster.CreateDatabase(t, "faults")
	e := startEmulator(t)
	b := startBroker(t, brokerEnv(dbURL, e))
	view := openView(t, dbURL)

	const total, users, workers = 240, 12, 8
	evs := prepareEvidence(t, b.URL, total, users)
	load := newSaveLoad(b.URL, newClient(t, 30*time.Second, true), evs)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ready := pollReadiness(ctx, newClient(t, 30*time.Second, true), b.URL)
	done := make(chan struct{})
	go func() {
		defer close(done)
		load.run(ctx, workers)
	}()

	outages := 0
	for i, mode := range []string{"fast", "immediate"} {
		threshold := int64(total * (i + 1) / 3)
		waitFor(t, fmt.Sprintf("%d saves before outage %d", threshold, i+1), time.Minute, func() bool { return load.savedOK.Load() >= threshold })
		unavailBefore, downBefore := load.unavail.Load(), ready.down.Load()
		cluster.Stop(t, mode)
		outages++
		began := time.Now()
		for load.unavail.Load() < unavailBefore+20 || ready.down.Load() < downBefore+3 {
			if time.Since(began) > time.Minute {
				load.mu.Lock()
				ready.mu.Lock()
				t.Fatalf("outage %d: after a minute, saves %v (%d pending, problems %q), readyz %v %q\n%s",
					i+1, load.statuses, load.pending.Load(), load.problems, ready.statuses, ready.problems, b.Output())
			}
			time.Sleep(10 * time.Millisecond)
		}
		cluster.Start(t)
	}
	waitFor(t, "every save to succeed after the outages", time.Minute, func() bool { return load.pending.Load() == 0 })
	load.finish()
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	waitFor(t, "readiness back", 30*time.Second, func() bool {
		r, err := get(http.DefaultClient, b.URL+"/readyz", "")
		return err == nil && r.Status == http.StatusOK
	})

	load.mu.Lock()
	defer load.mu.Unlock()
	for _, p := range load.problems {
		t.Error(p)
	}
	ready.mu.Lock()
	for _, p := range ready.problems {
		t.Error(p)
	}
	ready.mu.Unlock()
	if n := load.pending.Load(); n != 0 {
		t.Fatalf("%d saves never succeeded: the broker did not recover", n)
	}

	// Every save answered 2xx is recorded once, for its user, with the id
	// the answer gave.
	recorded := view.records(t, "cloudinary")
	var ids = map[string]string{}
	rows, err := view.pool.Query(context.Background(), `SELECT provider_id, id::text FROM files`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid, id string
		if err := rows.Scan(&pid, &id); err != nil {
			t.Fatal(err)
		}
		ids[pid] = id
	}
	rows.Close()
	owners := map[string]string{}
	for _, ev := range evs {
		owners[ev.publicID] = ev.user
	}
	for pid, id := range load.saved {
		switch {
		case recorded[pid] == "":
			t.Errorf("%s was answered 2xx but is not in the database", pid)
		case recorded[pid] != owners[pid]:
			t.Errorf("%s is recorded for %q, want %q", pid, recorded[pid], owners[pid])
		case ids[pid] != id:
			t.Errorf("%s: answered id %s, recorded id %s", pid, id, ids[pid])
		}
	}
	if len(recorded) != len(load.saved) {
		t.Errorf("%d records for %d saved assets", len(recorded), len(load.saved))
	}
	ambiguous := 0
	for pid := range load.after503 {
		if load.firstOK[pid] == http.StatusOK {
			ambiguous++ // committed, but the answer was lost to the outage
		}
	}
	t.Logf("%d outages; %d save requests (%d of them saving a saved asset again): %v; max latency %s; readyz %v; %d assets saved and checked; %d retried after 503; %d of those had been committed before the 503",
		outages, load.requests, load.resaves, load.statuses, load.maxTook.Round(time.Millisecond), ready.statuses, len(load.saved), len(load.after503), ambiguous)
}
