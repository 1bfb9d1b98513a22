package reliability

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// saveLoad drives saves of prepared evidence through a broker from several
// workers. An evidence answered 503 goes back in the queue, as a client
// honouring Retry-After would retry it; every other answer is final.
type saveLoad struct {
	base    string
	client  *http.Client
	queue   chan evidence
	pending atomic.Int64 // evidence not yet answered 2xx or refused

	mu        sync.Mutex
	statuses  map[int]int       // answers by status
	saved     map[string]string // public ID -> file id answered
	after503  map[string]bool   // public IDs that saw a 503 before their 2xx
	firstOK   map[string]int    // status of each public ID's 2xx (201 or 200)
	problems  []string          // answers the contract does not allow
	savedList []evidence
	maxTook   time.Duration
	requests  int
	resaves   int
	finished  atomic.Bool
	unavail   atomic.Int64 // 503 answers so far
	savedOK   atomic.Int64
	refusedOK atomic.Int64
}

type evidence struct {
	user, tok, body, publicID string
}

func newSaveLoad(base string, c *http.Client, evs []evidence) *saveLoad {
	l := &saveLoad{
		base: base, client: c, queue: make(chan evidence, len(evs)),
		statuses: map[int]int{}, saved: map[string]string{}, after503: map[string]bool{}, firstOK: map[string]int{},
	}
	for _, ev := range evs {
		l.queue <- ev
	}
	l.pending.Store(int64(len(evs)))
	return l
}

// run works the queue with n workers until finish is called (and nothing
// is pending) or ctx ends. When the queue is empty a worker saves an
// already saved asset again, so the database is never left idle while a
// fault is being injected; such a save must answer 200 with the same file.
func (l *saveLoad) run(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && !(l.finished.Load() && l.pending.Load() == 0); i++ {
				select {
				case ev := <-l.queue:
					l.once(ev)
				default:
					if again, ok := l.savedOne(w + i*n); ok {
						l.resave(again)
					} else {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// finish lets the workers stop once every evidence has been saved.
func (l *saveLoad) finish() { l.finished.Store(true) }

// savedOne picks a saved evidence by k.
func (l *saveLoad) savedOne(k int) (evidence, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.savedList) == 0 {
		return evidence{}, false
	}
	return l.savedList[k%len(l.savedList)], true
}

func (l *saveLoad) resave(ev evidence) {
	began := time.Now()
	r, err := postJSON(l.client, l.base+"/save-metadata", ev.tok, ev.body)
	took := time.Since(began)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests++
	l.maxTook = max(l.maxTook, took)
	switch {
	case err != nil:
		l.problems = append(l.problems, fmt.Sprintf("save again %s: no answer after %s: %v", ev.publicID, took, err))
		return
	case r.Status == http.StatusServiceUnavailable:
		if r.code() != "unavailable" || r.Header.Get("Retry-After") == "" {
			l.problems = append(l.problems, fmt.Sprintf("503 without its code or Retry-After: %s %v", r, r.Header))
		}
		l.unavail.Add(1)
	case r.Status != http.StatusOK:
		l.problems = append(l.problems, fmt.Sprintf("save again %s: %s, want 200", ev.publicID, r))
	case r.Body["file"].(map[string]any)["id"] != l.saved[ev.publicID]:
		l.problems = append(l.problems, fmt.Sprintf("save again %s: another file: %s", ev.publicID, r))
	}
	l.statuses[r.Status]++
	l.resaves++
}

// once saves one evidence and files the answer.
func (l *saveLoad) once(ev evidence) {
	began := time.Now()
	r, err := postJSON(l.client, l.base+"/save-metadata", ev.tok, ev.body)
	took := time.Since(began)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests++
	l.maxTook = max(l.maxTook, took)
	if err != nil {
		l.problems = append(l.problems, fmt.Sprintf("%s: no answer after %s: %v", ev.publicID, took, err))
		l.queue <- ev
		return
	}
	l.statuses[r.Status]++
	switch r.Status {
	case http.StatusCreated, http.StatusOK:
		if _, dup := l.saved[ev.publicID]; dup {
			l.problems = append(l.problems, fmt.Sprintf("%s answered 2xx twice", ev.publicID))
			return
		}
		l.saved[ev.publicID] = r.Body["file"].(map[string]any)["id"].(string)
		l.savedList = append(l.savedList, ev)
		l.firstOK[ev.publicID] = r.Status
		l.savedOK.Add(1)
		l.pending.Add(-1)
	case http.StatusServiceUnavailable:
		if r.code() != "unavailable" || r.Header.Get("Retry-After") == "" {
			l.problems = append(l.problems, fmt.Sprintf("503 without its code or Retry-After: %s %v", r, r.Header))
		}
		l.after503[ev.publicID] = true
		l.unavail.Add(1)
		time.AfterFunc(20*time.Millisecond, func() { l.queue <- ev })
	default:
		l.problems = append(l.problems, fmt.Sprintf("%s: %s", ev.publicID, r))
		l.refusedOK.Add(1)
		l.pending.Add(-1)
	}
}

// readiness polls /readyz and tallies its answers.
type readiness struct {
	mu       sync.Mutex
	statuses map[int]int
	last     int
	problems []string
	down     atomic.Int64 // 503 answers
}

func pollReadiness(ctx context.Context, c *http.Client, base string) *readiness {
	rd := &readiness{statuses: map[int]int{}}
	go func() {
		for ctx.Err() == nil {
			r, err := get(c, base+"/readyz", "")
			rd.mu.Lock()
			switch {
			case err != nil:
				rd.problems = append(rd.problems, err.Error())
			case r.Status == http.StatusServiceUnavailable:
				if r.code() != "unavailable" || r.Header.Get("Retry-After") == "" {
					rd.problems = append(rd.problems, "readyz 503 without code or Retry-After: "+r.String())
				}
				rd.down.Add(1)
			case r.Status != http.StatusOK:
				rd.problems = append(rd.problems, "readyz: "+r.String())
			}
			rd.statuses[r.Status]++
			rd.last = r.Status
			rd.mu.Unlock()
			time.Sleep(25 * time.Millisecond)
		}
	}()
	return rd
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// prepareEvidence uploads n assets to the emulator, spread over users,
// each signed by the broker at base; nothing touches the database.
func prepareEvidence(t *testing.T, base string, n, users int) []evidence {
	t.Helper()
	evs := make([]evidence, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	for i := range evs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			user := fmt.Sprintf("user%02d", i%users)
			tok := token(t, user)
			body, err := uploadCloudinary(http.DefaultClient, base, tok)
			if err != nil {
				errs <- err
				return
			}
			evs[i] = evidence{user: user, tok: tok, body: body, publicID: field(body, "public_id")}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return evs
}
