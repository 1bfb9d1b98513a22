// Package bench_test profiles the broker's request path in process, without
// the network: the Echo handler the broker serves, called through
// ServeHTTP as net/http calls it. The load run of `make bench` measures the
// whole server over loopback; these benchmarks say where its CPU goes:
//
//	go test -run '^$' -bench Handler -cpuprofile cpu.prof ./bench/
//	go tool pprof -top cpu.prof
package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/signer"
)

const (
	benchCloud     = "benchcloud"
	benchKey       = "123456789012345"
	benchSecret    = "abcdefghijklmnopqrstuvwxyz0"
	benchJWTSecret = "bench-jwt-secret-0123456789abcdefghijklmnop"
	benchUser      = "bench-user-0"
	benchDelivery  = "https://res.cloudinary.com"
)

// newHandler wires the broker as `broker serve` does for a Cloudinary
// account and an HS256 secret, logging as in production: one JSON line
// per request, written to a real file (/dev/null) so the write is paid.
func newHandler(b *testing.B, store metadata.Store) http.Handler {
	return newHandlerLogging(b, store, slog.LevelInfo)
}

func newHandlerLogging(b *testing.B, store metadata.Store, level slog.Level) http.Handler {
	b.Helper()
	client := &cloudinary.Client{
		CloudName: benchCloud, APIKey: benchKey, APISecret: benchSecret,
		UploadPrefix: "https://api.cloudinary.com", DeliveryURL: benchDelivery, Algorithm: signer.SHA1,
	}
	svc := &metadata.Service{Store: store, Cloudinary: metadata.NewCloudinary(metadata.CloudinarySettings{
		CloudName: benchCloud, APIKey: benchKey, APISecret: benchSecret,
		UploadPrefix: "https://api.cloudinary.com", Folder: "uploads", Algorithm: signer.SHA1,
		TTL: 30 * time.Minute,
	}, client)}
	verifier, err := auth.New(context.Background(), config.Auth{JWTSecret: benchJWTSecret})
	if err != nil {
		b.Fatal(err)
	}
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devNull.Close() })
	logger := slog.New(slog.NewJSONHandler(devNull, &slog.HandlerOptions{Level: level}))
	return httpapi.New(httpapi.Deps{Service: svc, Auth: verifier, Logger: logger})
}

func bearer(b *testing.B) string {
	b.Helper()
	tok, err := auth.IssueHS256([]byte(benchJWTSecret), "", benchUser, time.Hour, "", "")
	if err != nil {
		b.Fatal(err)
	}
	return "Bearer " + tok
}

// writer is the cheapest http.ResponseWriter: the recorder of httptest
// would add its own cost to every figure.
type writer struct {
	h      http.Header
	status int
	n      int
}

func (w *writer) Header() http.Header { return w.h }
func (w *writer) WriteHeader(s int)   { w.status = s }
func (w *writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.n += len(p)
	return len(p), nil
}

func (w *writer) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// BenchmarkHandlerGenerateSignature is GET /generate-signature with an
// HS256 token: everything the broker does per signature apart from
// net/http's own work, which the ceiling server measures.
func BenchmarkHandlerGenerateSignature(b *testing.B) {
	benchGenerateSignature(b, newHandler(b, nil))
}

// BenchmarkHandlerGenerateSignatureNoLog is the same with LOG_LEVEL=warn:
// the difference is what the log line per request costs.
func BenchmarkHandlerGenerateSignatureNoLog(b *testing.B) {
	benchGenerateSignature(b, newHandlerLogging(b, nil, slog.LevelWarn))
}

func benchGenerateSignature(b *testing.B, h http.Handler) {
	req, err := http.NewRequest("GET", "/generate-signature", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", bearer(b))
	w := &writer{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// BenchmarkHandlerSaveMetadata is POST /save-metadata of a signed upload
// response for a fresh asset each time, stored in PostgreSQL.
func BenchmarkHandlerSaveMetadata(b *testing.B) {
	ctx := context.Background()
	url := testdb.PostgresURL(b)
	if err := db.Migrate(ctx, url); err != nil {
		b.Fatal(err)
	}
	store, err := db.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	h := newHandler(b, store)
	auth := bearer(b)
	delivery := &cloudinary.Client{CloudName: benchCloud, DeliveryURL: benchDelivery}
	prefix := "uploads/" + metadata.UserSegment(benchUser) + "/" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	const version = 1713997800
	w := &writer{h: http.Header{}}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		pid := prefix + strconv.Itoa(n)
		body := fmt.Sprintf(`{"public_id":%q,"version":%d,"signature":%q,"secure_url":%q,"resource_type":"image","type":"upload","format":"png","bytes":12345,"width":640,"height":480,"original_filename":"cat"}`,
			pid, version, signer.SignCloudinaryResponse(pid, version, benchSecret, signer.SHA1),
			delivery.DeliveryURLFor("image", version, pid, "png"))
		req, err := http.NewRequest("POST", "/save-metadata", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/json")
		w.reset()
		h.ServeHTTP(w, req)
		if w.status != 201 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// SetReadDeadline and SetWriteDeadline let http.ResponseController set the
// deadlines the broker sets on a real connection, instead of failing with
// an error that would be allocated and counted here.
func (w *writer) SetReadDeadline(time.Time) error  { return nil }
func (w *writer) SetWriteDeadline(time.Time) error { return nil }
