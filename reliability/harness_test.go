package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/internal/brokerproc"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
)

// The accounts every test uses: the emulator serves them, the broker is
// configured with them.
const (
	jwtSecret       = "reliability-jwt-secret-reliability-0123"
	cloudName       = "relcloud"
	cldAPIKey       = "111122223333444"
	cldAPISecret    = "reliability_api_secret"
	ucPublicKey     = "reliabilitypublickey"
	ucSecretKey     = "reliability-uploadcare-secret"
	ucWebhookSecret = "reliability-uc-webhook-secret"
)

// ---- the broker binary ----

var (
	repoRoot  string
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "broker-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// brokerBinary builds cmd/broker once per test binary, on first use, so
// that tests which run the broker in-process do not pay for the build.
func brokerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "broker")
		buildErr = brokerproc.Build(repoRoot, binPath, nil)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// brokerProc is a running `broker serve`.
type brokerProc struct {
	*brokerproc.Process
}

// startBroker runs `broker serve` with exactly env (plus PATH and HOME) in
// an empty directory, so no developer .env leaks in, and waits for its
// "listening" line to learn the address. It is terminated when t ends.
func startBroker(t testing.TB, env map[string]string) *brokerProc {
	t.Helper()
	bp, err := brokerproc.Start(brokerBinary(t), t.TempDir(), env, 60*time.Second, "serve")
	if err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{bp}
	t.Cleanup(func() {
		if code := p.terminate(); code != 0 && !t.Failed() {
			t.Errorf("broker exited with status %d:\n%s", code, p.Output())
		}
	})
	return p
}

// terminate sends SIGTERM (once) and returns the exit status; a broker
// that does not stop within 45 s (its own drain limit is 30 s) is killed
// and reported as -1.
func (p *brokerProc) terminate() int {
	code, _ := p.Stop(syscall.SIGTERM, 45*time.Second)
	return code
}

// brokerEnv is the configuration of a broker on dbURL with both providers
// pointing at the emulator.
func brokerEnv(dbURL string, e *emu) map[string]string {
	return map[string]string{
		"ADDR":                      "127.0.0.1:0",
		"DATABASE_URL":              dbURL,
		"CLOUDINARY_URL":            fmt.Sprintf("cloudinary://%s:%s@%s", cldAPIKey, cldAPISecret, cloudName),
		"CLOUDINARY_UPLOAD_PREFIX":  e.URL + "/cloudinary",
		"CLOUDINARY_DELIVERY_URL":   e.URL + "/cloudinary",
		"UPLOADCARE_PUBLIC_KEY":     ucPublicKey,
		"UPLOADCARE_SECRET_KEY":     ucSecretKey,
		"UPLOADCARE_UPLOAD_URL":     e.URL + "/uploadcare/upload",
		"UPLOADCARE_API_URL":        e.URL + "/uploadcare/api",
		"UPLOADCARE_CDN_URL":        e.URL + "/uploadcare/cdn",
		"UPLOADCARE_WEBHOOK_SECRET": ucWebhookSecret,
		"AUTH_JWT_SECRET":           jwtSecret,
		"RATE_LIMIT_PER_MINUTE":     "0",
	}
}

// ---- the emulator ----

// emu is the provider emulator on its own HTTP server.
type emu struct {
	*emulator.Emulator
	URL string
	// apiRequests counts requests that reached the emulated APIs (not
	// delivery), so a test knows a broker request is in flight.
	apiRequests atomic.Int64
	// override, when set, answers the API requests instead of the
	// emulator: faults the emulator has no switch for.
	override atomic.Pointer[http.HandlerFunc]
}

// setOverride makes h answer every API request; nil restores the emulator.
func (e *emu) setOverride(h http.HandlerFunc) {
	if h == nil {
		e.override.Store(nil)
		return
	}
	e.override.Store(&h)
}

// startEmulator serves both providers; ucHooks receive Uploadcare's
// webhooks. Cloudinary notifications go wherever a signed upload's
// notification_url says.
func startEmulator(t testing.TB, ucHooks ...string) *emu {
	t.Helper()
	em, err := emulator.New(emulator.Options{
		Cloudinary: &emulator.CloudinaryAccount{CloudName: cloudName, APIKey: cldAPIKey, APISecret: cldAPISecret},
		Uploadcare: &emulator.UploadcareProject{
			PublicKey: ucPublicKey, SecretKey: ucSecretKey, SignedUploads: true,
			WebhookTargets: ucHooks, WebhookSecret: ucWebhookSecret,
		},
		NotificationRetryDelays: []time.Duration{},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &emu{Emulator: em}
	h := em.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/v1_1/") || strings.HasPrefix(r.URL.Path, "/uploadcare/api/") || strings.HasPrefix(r.URL.Path, "/uploadcare/upload/") {
			e.apiRequests.Add(1)
			if o := e.override.Load(); o != nil {
				(*o)(w, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	e.URL = srv.URL
	t.Cleanup(func() {
		_ = em.Close()
		srv.Close()
	})
	return e
}

// ---- the broker in-process ----

// inproc is the broker's HTTP layer served from the test binary, so the
// race detector sees it and goroutines can be counted.
type inproc struct {
	URL   string
	Store *db.Postgres
	// providerHTTP is the broker's client towards the providers.
	providerHTTP *http.Client
	srv          *httptest.Server
}

// startInProcess wires the broker as cmd/broker does, with providerTimeout
// bounding every provider call; opts adjust the HTTP layer's settings.
func startInProcess(t testing.TB, dbURL string, e *emu, providerTimeout time.Duration, opts ...func(*httpapi.Deps)) *inproc {
	t.Helper()
	ctx := context.Background()
	if err := db.MigratePostgres(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	store, err := db.OpenPostgres(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: providerTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	cld := &cloudinary.Client{
		CloudName: cloudName, APIKey: cldAPIKey, APISecret: cldAPISecret,
		UploadPrefix: e.URL + "/cloudinary", DeliveryURL: e.URL + "/cloudinary",
		Algorithm: signer.SHA1, HTTP: hc,
	}
	uc := &uploadcare.Client{
		PublicKey: ucPublicKey, SecretKey: ucSecretKey, HTTP: hc,
		UploadURL: e.URL + "/uploadcare/upload", APIURL: e.URL + "/uploadcare/api", CDNURL: e.URL + "/uploadcare/cdn",
	}
	svc := &metadata.Service{
		Store: store,
		Cloudinary: metadata.NewCloudinary(metadata.CloudinarySettings{
			CloudName: cloudName, APIKey: cldAPIKey, APISecret: cldAPISecret,
			UploadPrefix: cld.UploadPrefix, Folder: "uploads", Algorithm: signer.SHA1, TTL: 30 * time.Minute,
		}, cld),
		Uploadcare: metadata.NewUploadcare(metadata.UploadcareSettings{
			PublicKey: ucPublicKey, SecretKey: ucSecretKey, UploadURL: uc.UploadURL, TTL: 30 * time.Minute,
			WebhookSecret: ucWebhookSecret,
		}, uc),
	}
	verifier, err := auth.New(ctx, config.Auth{JWTSecret: jwtSecret, UserClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	deps := httpapi.Deps{Service: svc, Auth: verifier, Logger: slog.New(slog.DiscardHandler), UploadMaxBytes: 1 << 20}
	for _, o := range opts {
		o(&deps)
	}
	srv := httptest.NewServer(httpapi.New(deps))
	t.Cleanup(func() {
		srv.Close()
		store.Close()
		hc.CloseIdleConnections()
	})
	return &inproc{URL: srv.URL, Store: store, providerHTTP: hc, srv: srv}
}

// ---- HTTP client side ----

// reply is a broker answer, read whole.
type reply struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r reply) code() string { s, _ := r.Body["code"].(string); return s }

func (r reply) String() string {
	raw := string(r.Raw)
	if len(raw) > 300 {
		raw = raw[:300] + "…"
	}
	return fmt.Sprintf("%d %s", r.Status, raw)
}

// send performs req and reads the answer; a body that is not JSON is kept
// raw with Body nil.
func send(c *http.Client, req *http.Request) (reply, error) {
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("read answer: %w", err)
	}
	r := reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r, nil
}

// newRequest builds a request; header is name, value pairs.
func newRequest(method, url, token string, body io.Reader, header ...string) *http.Request {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		panic(err) // the tests' own URLs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// postJSON sends body as application/json.
func postJSON(c *http.Client, url, token, body string) (reply, error) {
	return send(c, newRequest(http.MethodPost, url, token, strings.NewReader(body), "Content-Type", "application/json"))
}

func get(c *http.Client, url, token string) (reply, error) {
	return send(c, newRequest(http.MethodGet, url, token, nil))
}

var (
	tokenMu    sync.Mutex
	tokenCache = map[string]string{}
)

// token returns a valid JWT for user (one per user per test binary).
func token(t testing.TB, user string) string {
	t.Helper()
	tokenMu.Lock()
	defer tokenMu.Unlock()
	if tok, ok := tokenCache[user]; ok {
		return tok
	}
	tok, err := auth.IssueHS256([]byte(jwtSecret), "sub", user, 2*time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tokenCache[user] = tok
	return tok
}

// pngBytes is a valid 1×1 PNG.
var pngBytes = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")

// multipartBody writes fields and, when file is non-nil, a file part.
func multipartBody(fields map[string]string, fileField string, file []byte) (*bytes.Buffer, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != nil {
		fw, _ := mw.CreateFormFile(fileField, "cat.png")
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

// uploadCloudinary asks the broker at base for a signature as tok's user
// and uploads a PNG to the emulator with exactly the signed fields. It
// returns Cloudinary's answer, the evidence a client saves.
func uploadCloudinary(c *http.Client, base, tok string) (string, error) {
	sig, err := get(c, base+"/generate-signature?provider=cloudinary&resource_type=image", tok)
	if err != nil {
		return "", err
	}
	if sig.Status != http.StatusOK {
		return "", fmt.Errorf("generate-signature: %s", sig)
	}
	fields := map[string]string{}
	for k, v := range sig.Body["params"].(map[string]any) {
		fields[k] = v.(string)
	}
	fields["api_key"] = sig.Body["api_key"].(string)
	fields["signature"] = sig.Body["signature"].(string)
	body, ct := multipartBody(fields, "file", pngBytes)
	up, err := send(c, newRequest(http.MethodPost, sig.Body["upload_url"].(string), "", body, "Content-Type", ct))
	if err != nil {
		return "", err
	}
	if up.Status != http.StatusOK {
		return "", fmt.Errorf("upload to the emulator: %s", up)
	}
	return string(up.Raw), nil
}

// uploadUploadcare does the same for Uploadcare and returns the file UUID.
func uploadUploadcare(c *http.Client, base, tok string) (string, error) {
	uuid, _, err := uploadUploadcareParams(c, base, tok)
	return uuid, err
}

// uploadUploadcareParams also returns the signed fields, the intent among
// them, which a webhook carries back.
func uploadUploadcareParams(c *http.Client, base, tok string) (string, map[string]string, error) {
	sig, err := get(c, base+"/generate-signature?provider=uploadcare", tok)
	if err != nil {
		return "", nil, err
	}
	if sig.Status != http.StatusOK {
		return "", nil, fmt.Errorf("generate-signature: %s", sig)
	}
	fields := map[string]string{}
	for k, v := range sig.Body["params"].(map[string]any) {
		fields[k] = v.(string)
	}
	body, ct := multipartBody(fields, "file", pngBytes)
	up, err := send(c, newRequest(http.MethodPost, sig.Body["upload_url"].(string), "", body, "Content-Type", ct))
	if err != nil {
		return "", nil, err
	}
	uuid, _ := up.Body["file"].(string)
	if up.Status != http.StatusOK || uuid == "" {
		return "", nil, fmt.Errorf("upload to the emulator: %s", up)
	}
	return uuid, fields, nil
}

// mustUploadCloudinary and mustUploadUploadcare are for the test goroutine.
func mustUploadCloudinary(t testing.TB, base, tok string) string {
	t.Helper()
	ev, err := uploadCloudinary(http.DefaultClient, base, tok)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func mustUploadUploadcare(t testing.TB, base, tok string) string {
	t.Helper()
	uuid, err := uploadUploadcare(http.DefaultClient, base, tok)
	if err != nil {
		t.Fatal(err)
	}
	return uuid
}

// field reads one string member of a JSON object.
func field(raw, name string) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(raw), &m)
	s, _ := m[name].(string)
	return s
}

// ---- the database, looked at directly ----

// dbView reads the files table with its own pool, as a superuser role,
// which row-level security does not hide rows from.
type dbView struct {
	pool *pgxpool.Pool
}

func openView(t testing.TB, url string) *dbView {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &dbView{pool: pool}
}

// snapshot sums up the files table (the row count and a digest of every
// row) and counts the remembered webhook deliveries.
type snapshot struct {
	Rows       int
	Digest     string
	Deliveries int
}

func (d *dbView) snapshot(t testing.TB) snapshot {
	t.Helper()
	var s snapshot
	err := d.pool.QueryRow(context.Background(), `SELECT count(*), coalesce(md5(string_agg(
		concat_ws('|', id, provider, provider_id, url, resource_type, user_id, bytes, format, mime_type, width, height, original_filename, created_at),
		E'\n' ORDER BY id)), ''), (SELECT count(*) FROM webhook_deliveries) FROM files`).Scan(&s.Rows, &s.Digest, &s.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// records returns owner by provider_id for one provider.
func (d *dbView) records(t testing.TB, provider string) map[string]string {
	t.Helper()
	rows, err := d.pool.Query(context.Background(), `SELECT provider_id, user_id FROM files WHERE provider = $1`, provider)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, user string
		if err := rows.Scan(&id, &user); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[id]; dup {
			t.Errorf("%s asset %s is recorded twice", provider, id)
		}
		out[id] = user
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ---- small things ----

// isConnRefused tells a connection the server never accepted.
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

// newClient is a client with its own connections, closed when t ends.
func newClient(t testing.TB, timeout time.Duration, keepAlive bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = !keepAlive
	tr.MaxIdleConnsPerHost = 64
	c := &http.Client{Timeout: timeout, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}
