package load

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadResponseFramings(t *testing.T) {
	for _, tc := range []struct {
		name, wire, body string
		status           int
		keepAlive        bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 200, true},
		{"chunked with extension and trailer", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nTrailer: v\r\n\r\n", "hello", 201, true},
		{"close-delimited", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", "hello", 200, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 200, false},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "ok", 200, true},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", "", 204, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, keep, body, err := readResponse(bufio.NewReader(strings.NewReader(tc.wire)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.status || keep != tc.keepAlive || string(body) != tc.body {
				t.Fatalf("got %d keep-alive=%v %q, want %d %v %q", status, keep, body, tc.status, tc.keepAlive, tc.body)
			}
		})
	}
}

func TestReadResponseRefusesGarbage(t *testing.T) {
	for _, wire := range []string{
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		if _, _, _, err := readResponse(bufio.NewReader(strings.NewReader(wire)), nil); err == nil {
			t.Errorf("%q: no error", wire)
		}
	}
}

// Run against a real server: every request arrives, the count and the
// percentiles are consistent, and wrong answers are counted as errors.
func TestRunHTTP(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.Header.Get("X-Fail") != "" {
			w.WriteHeader(http.StatusTeapot)
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	req := Render(nil, "GET", addr, "/", nil, nil)

	target := &HTTPTarget{Addr: addr, Request: Static(req), Check: func(b []byte) error {
		if string(b) != `{"ok":true}` {
			return errors.New("wrong body")
		}
		return nil
	}}
	res, err := Run(context.Background(), Config{Concurrency: 4, Requests: 200}, target.NewWorker)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.Errors != 0 || served.Load() != 200 {
		t.Fatalf("%d ok, %d errors, server saw %d; want 200, 0, 200 (%s)", res.Requests, res.Errors, served.Load(), res.FirstError)
	}
	if !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.Max) || res.RPS <= 0 {
		t.Fatalf("inconsistent figures: %+v", res)
	}

	failing := &HTTPTarget{Addr: addr, Request: Static(Render(nil, "GET", addr, "/", []string{"X-Fail", "1"}, nil))}
	res, err = Run(context.Background(), Config{Concurrency: 2, Requests: 20, MaxErrorsInARow: 5}, failing.NewWorker)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "status 418") {
		t.Fatalf("wrong status not counted as an error: %+v", res)
	}
}

func TestRunDurationAndWarmup(t *testing.T) {
	var calls atomic.Int64
	do := func(context.Context, int, uint64) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}
	res, err := Run(context.Background(), Config{Concurrency: 2, Warmup: 50 * time.Millisecond, Duration: 100 * time.Millisecond}, Func(do))
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed != 100*time.Millisecond || res.Requests == 0 || res.Requests >= calls.Load() {
		t.Fatalf("warm-up requests were counted or none measured: %d measured of %d, elapsed %s", res.Requests, calls.Load(), res.Elapsed)
	}
}
