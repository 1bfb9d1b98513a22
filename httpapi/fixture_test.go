package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
)

const (
	testSecret = "httpapi-test-jwt-secret-0123456789abcdef"
	cloudName  = "democloud"
	apiKey     = "123456789012345"
	apiSecret  = "api_secret_for_tests"
)

// stack is a broker wired to real PostgreSQL and the emulator over HTTP.
type stack struct {
	t      *testing.T
	URL    string
	Emu    *emulator.Emulator
	EmuURL string
	Store  *db.Postgres
}

// migratedStore is a fresh, migrated PostgreSQL database's store, closed
// when the test ends.
func migratedStore(t *testing.T) *db.Postgres {
	t.Helper()
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	if err := db.MigratePostgres(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	store, err := db.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	return store
}

// serveEmulator runs an emulator with opts over real HTTP until the test
// ends, and returns it with its base URL. Notifications are not retried,
// so a test's ending is not held up by a retry schedule.
func serveEmulator(t *testing.T, opts emulator.Options) (*emulator.Emulator, string) {
	t.Helper()
	opts.NotificationRetryDelays = []time.Duration{}
	emu, err := emulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = emu.Close() })
	return emu, srv.URL
}

// uploadcareClient is the broker's Uploadcare client for the emulator at
// emuURL, signing with secret.
func uploadcareClient(emuURL, secret string, hc *http.Client) *uploadcare.Client {
	return &uploadcare.Client{
		PublicKey: ucPub, SecretKey: secret, HTTP: hc,
		UploadURL: emuURL + "/uploadcare/upload", APIURL: emuURL + "/uploadcare/api", CDNURL: emuURL + "/uploadcare/cdn",
	}
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	store := migratedStore(t)
	emu, emuURL := serveEmulator(t, emulator.Options{
		Cloudinary: &emulator.CloudinaryAccount{CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret},
	})
	client := &cloudinary.Client{
		CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret,
		UploadPrefix: emuURL + "/cloudinary", DeliveryURL: emuURL + "/cloudinary",
		Algorithm: signer.SHA1, HTTP: &http.Client{Timeout: 2 * time.Second},
	}
	svc := &metadata.Service{Store: store, Cloudinary: metadata.NewCloudinary(metadata.CloudinarySettings{
		CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret,
		UploadPrefix: client.UploadPrefix, Folder: "uploads", Algorithm: signer.SHA1, TTL: 30 * time.Minute,
	}, client)}
	verifier, err := auth.New(ctx, config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Service: svc, Auth: verifier, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	return &stack{t: t, URL: srv.URL, Emu: emu, EmuURL: emuURL, Store: store}
}

func tokenFor(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.IssueHS256([]byte(testSecret), "sub", user, time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is a decoded broker answer.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r response) code() string { s, _ := r.Body["code"].(string); return s }

// do sends a request with the user's token ("" for none).
func (s *stack) do(method, path, user string, body string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+tokenFor(s.t, user))
	}
	return send(s.t, req)
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.Body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", req.Method, req.URL.Path, raw)
		}
	}
	return r
}

// pngBytes is a valid 1×1 PNG.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")

// uploadSigned gets a signature for user and uploads a PNG with exactly the
// returned fields; it returns the provider's answer as raw JSON.
func (s *stack) uploadSigned(user string) string {
	s.t.Helper()
	sig := s.do("GET", "/generate-signature?provider=cloudinary&resource_type=image", user, "")
	if sig.Status != 200 {
		s.t.Fatalf("generate-signature: %d %s", sig.Status, sig.Raw)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range sig.Body["params"].(map[string]any) {
		_ = mw.WriteField(k, v.(string))
	}
	_ = mw.WriteField("api_key", sig.Body["api_key"].(string))
	_ = mw.WriteField("signature", sig.Body["signature"].(string))
	fw, _ := mw.CreateFormFile("file", "cat.png")
	_, _ = fw.Write(pngBytes)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", sig.Body["upload_url"].(string), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("upload: %d %s", resp.StatusCode, raw)
	}
	return string(raw)
}

// countFiles counts every row, across users, straight from the database.
func (s *stack) countFiles() int {
	s.t.Helper()
	var n int
	if err := s.Store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM files").Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// patch returns the JSON object raw with fields replaced (nil deletes).
func patch(t *testing.T, raw string, fields map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}
