// Package load is the broker's load generator: a fixed number of workers,
// each with its own connection, sending one request at a time for a fixed
// duration (or request count), with latency percentiles and throughput.
//
// It is built for a small machine where the generator shares the CPU with
// the server it measures. The HTTP worker therefore speaks HTTP/1.1 over a
// raw TCP connection with requests rendered once into bytes, rather than
// through net/http's client, whose per-request cost (header maps, transport
// bookkeeping, goroutines per connection) would be taken from the server
// under test and would differ between servers only by noise. Every target is
// driven by the same worker, so ratios between targets stay fair.
package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Worker sends one request at a time. A worker is used by one goroutine.
type Worker interface {
	// Do sends one request and waits for its whole answer. An error counts
	// as a failed request; the worker should be ready for the next Do
	// (reconnecting if it must).
	Do(ctx context.Context) error
	// Close releases the worker's connection.
	Close() error
}

// NewWorker makes worker number id (0 … Concurrency-1).
type NewWorker func(id int) (Worker, error)

// Config says how hard and how long to drive a target.
type Config struct {
	// Concurrency is the number of workers, hence of connections and of
	// requests in flight.
	Concurrency int
	// Warmup is run before measuring and its requests are not counted: it
	// fills connection pools, caches and the heap.
	Warmup time.Duration
	// Duration is how long to measure. Ignored when Requests is set.
	Duration time.Duration
	// Requests, when positive, ends the measurement after this many
	// requests instead of after Duration.
	Requests int64
	// MaxErrorsInARow stops a worker that fails this many times in a row
	// (default 100), so a dead server ends the run instead of spinning.
	MaxErrorsInARow int
}

// Result is one measurement.
type Result struct {
	Concurrency int           `json:"concurrency"`
	Requests    int64         `json:"requests"` // successful, measured requests
	Errors      int64         `json:"errors"`   // failed, measured requests
	Elapsed     time.Duration `json:"elapsed_ns"`
	RPS         float64       `json:"rps"` // successful requests per second
	P50         time.Duration `json:"p50_ns"`
	P90         time.Duration `json:"p90_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	// FirstError is the first failure seen, to tell a person why.
	FirstError string `json:"first_error,omitempty"`
}

func (r Result) String() string {
	s := fmt.Sprintf("c=%-3d %9.0f req/s  p50 %-9s p90 %-9s p99 %-9s max %-9s (%d ok, %d errors in %s)",
		r.Concurrency, r.RPS, round(r.P50), round(r.P90), round(r.P99), round(r.Max), r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond))
	if r.FirstError != "" {
		s += "  first error: " + r.FirstError
	}
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	default:
		return d.Round(100 * time.Nanosecond)
	}
}

// defaultMaxErrorsInARow: a healthy server never fails this often in a row.
const defaultMaxErrorsInARow = 100

// Run drives Concurrency workers made by newWorker. It returns an error only
// when the run could not start (a worker could not be made) or ctx ended;
// failed requests are counted in the Result.
func Run(ctx context.Context, cfg Config, newWorker NewWorker) (Result, error) {
	if cfg.Concurrency < 1 {
		return Result{}, errors.New("load: concurrency must be at least 1")
	}
	if cfg.Requests <= 0 && cfg.Duration <= 0 {
		return Result{}, errors.New("load: give a duration or a request count")
	}
	if cfg.MaxErrorsInARow <= 0 {
		cfg.MaxErrorsInARow = defaultMaxErrorsInARow
	}
	workers := make([]Worker, 0, cfg.Concurrency)
	defer func() {
		for _, w := range workers {
			_ = w.Close()
		}
	}()
	for i := range cfg.Concurrency {
		w, err := newWorker(i)
		if err != nil {
			return Result{}, fmt.Errorf("load: worker %d: %w", i, err)
		}
		workers = append(workers, w)
	}

	// The measured window starts after the warm-up. With a request count
	// it ends when the count is reached; with a duration, at a fixed time.
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	measureUntil := measureFrom.Add(cfg.Duration)
	var remaining atomic.Int64
	remaining.Store(cfg.Requests)
	byCount := cfg.Requests > 0

	var (
		wg         sync.WaitGroup
		errorsSeen atomic.Int64
		firstErr   atomic.Pointer[string]
		samples    = make([][]time.Duration, cfg.Concurrency)
	)
	// Each worker records into its own slice: no sharing on the hot path.
	expected := 1 << 14
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, expected)
			inARow := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				measured := !t0.Before(measureFrom)
				if measured {
					if byCount {
						if remaining.Add(-1) < 0 {
							break
						}
					} else if !t0.Before(measureUntil) {
						break
					}
				}
				err := w.Do(ctx)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					if measured {
						errorsSeen.Add(1)
					}
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					if inARow++; inARow >= cfg.MaxErrorsInARow {
						break
					}
					continue
				}
				inARow = 0
				if measured {
					lat = append(lat, d)
				}
			}
			samples[i] = lat
		}()
	}
	wg.Wait()
	end := time.Now()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("load: %w", err)
	}

	all := slices.Concat(samples...)
	slices.Sort(all)
	elapsed := end.Sub(measureFrom)
	if !byCount {
		// Requests started in the window count; the window is Duration
		// long, and requests finishing just after it belong to it.
		elapsed = cfg.Duration
	}
	r := Result{
		Concurrency: cfg.Concurrency,
		Requests:    int64(len(all)),
		Errors:      errorsSeen.Load(),
		Elapsed:     elapsed,
	}
	if p := firstErr.Load(); p != nil {
		r.FirstError = *p
	}
	if len(all) > 0 {
		r.RPS = float64(len(all)) / elapsed.Seconds()
		r.P50 = percentile(all, 50)
		r.P90 = percentile(all, 90)
		r.P99 = percentile(all, 99)
		r.Max = all[len(all)-1]
	}
	return r, nil
}

// percentile of sorted samples, nearest-rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// Func makes workers that call do, for targets that are not HTTP servers
// (the raw-INSERT ceiling). seq counts the worker's calls from 0.
func Func(do func(ctx context.Context, id int, seq uint64) error) NewWorker {
	return func(id int) (Worker, error) { return &funcWorker{do: do, id: id}, nil }
}

type funcWorker struct {
	do  func(ctx context.Context, id int, seq uint64) error
	id  int
	seq uint64
}

func (w *funcWorker) Do(ctx context.Context) error {
	err := w.do(ctx, w.id, w.seq)
	w.seq++
	return err
}

func (w *funcWorker) Close() error { return nil }
