package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/signer"
)

// logBuffer collects log lines written from the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records decodes the JSON log lines whose msg is msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// opsServer is the HTTP layer on a SQLite store with Cloudinary signing
// only (no provider calls): enough for middleware, limits and metrics.
type opsServer struct {
	t    *testing.T
	URL  string
	Logs *logBuffer
}

func newOpsServer(t *testing.T, configure func(d *httpapi.Deps)) *opsServer {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ops.db")
	if err := db.MigrateSQLite(ctx, path); err != nil {
		t.Fatal(err)
	}
	store, err := db.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	svc := &metadata.Service{Store: store, Cloudinary: metadata.NewCloudinary(metadata.CloudinarySettings{
		CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret,
		UploadPrefix: "https://api.cloudinary.invalid", Folder: "uploads", Algorithm: signer.SHA1, TTL: 30 * time.Minute,
	}, nil)}
	verifier, err := auth.New(ctx, config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	d := httpapi.Deps{Service: svc, Auth: verifier, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	if configure != nil {
		configure(&d)
	}
	srv := httptest.NewServer(httpapi.New(d))
	t.Cleanup(srv.Close)
	return &opsServer{t: t, URL: srv.URL, Logs: logs}
}

// request sends method path with the headers given and, when user is set,
// that user's token.
func (o *opsServer) request(method, path, user string, body io.Reader, header map[string]string) response {
	o.t.Helper()
	req, err := http.NewRequest(method, o.URL+path, body)
	if err != nil {
		o.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+tokenFor(o.t, user))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		o.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if json.Valid(raw) {
		_ = json.Unmarshal(raw, &r.Body)
	}
	return r
}

func (o *opsServer) get(path, user string) response {
	o.t.Helper()
	return o.request("GET", path, user, nil, nil)
}

// clock is a settable time for the rate limiter.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
