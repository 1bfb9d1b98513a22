package cloudinary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokerdev/broker/signer"
)

const (
	testCloud  = "demo"
	testKey    = "1234567890"
	testSecret = "test_secret_123"
)

// newTestClient starts an HTTP server standing in for Cloudinary's API and
// returns a client pointed at it. The server is closed when the test ends.
func newTestClient(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Client{
		CloudName:    testCloud,
		APIKey:       testKey,
		APISecret:    testSecret,
		UploadPrefix: srv.URL + "/", // the trailing slash must be tolerated
		DeliveryURL:  "https://res.cloudinary.com",
	}
}

// authorized checks the Admin API's Basic credentials the way Cloudinary
// does, answering 401 in Cloudinary's error shape when they are wrong.
func authorized(w http.ResponseWriter, r *http.Request) bool {
	key, secret, ok := r.BasicAuth()
	if !ok || key != testKey || secret != testSecret {
		writeJSON(w, http.StatusUnauthorized, `{"error":{"message":"Invalid credentials"}}`)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// mustNotCall fails the test if the client sends anything.
func mustNotCall(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
	}
}

// checkNoSecret guards the rule that the API secret never reaches an error.
func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text contains the API secret: %v", err)
	}
}

const imageAnswer = `{
  "asset_id": "0123456789abcdef0123456789abcdef",
  "public_id": "uploads/dev-user/cat photo",
  "format": "jpg", "version": 1700000123, "resource_type": "image", "type": "upload",
  "created_at": "2023-11-14T22:15:23Z", "bytes": 12345, "width": 640, "height": 480,
  "asset_folder": "", "display_name": "cat photo", "original_filename": "IMG_0001",
  "url": "http://res.cloudinary.com/demo/image/upload/v1700000123/uploads/dev-user/cat%20photo.jpg",
  "secure_url": "https://res.cloudinary.com/demo/image/upload/v1700000123/uploads/dev-user/cat%20photo.jpg",
  "tags": ["a"], "context": {"custom": {"alt": "x"}}, "derived": [], "pages": 1, "placeholder": false
}`

func TestResourceFound(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if !authorized(w, r) {
			return
		}
		// Each folder of the public ID is escaped on its own; the slashes stay.
		const wantPath = "/v1_1/demo/resources/image/upload/uploads/dev-user/cat%20photo"
		if r.Method != http.MethodGet || r.URL.EscapedPath() != wantPath {
			t.Errorf("got %s %s, want GET %s", r.Method, r.URL.EscapedPath(), wantPath)
			writeJSON(w, http.StatusNotFound, `{"error":{"message":"wrong path"}}`)
			return
		}
		writeJSON(w, http.StatusOK, imageAnswer)
	})

	res, err := c.Resource(context.Background(), "image", "uploads/dev-user/cat photo")
	if err != nil {
		t.Fatalf("Resource: %v", err)
	}
	want := Resource{
		AssetID:          "0123456789abcdef0123456789abcdef",
		PublicID:         "uploads/dev-user/cat photo",
		Format:           "jpg",
		ResourceType:     "image",
		Type:             "upload",
		URL:              "http://res.cloudinary.com/demo/image/upload/v1700000123/uploads/dev-user/cat%20photo.jpg",
		SecureURL:        "https://res.cloudinary.com/demo/image/upload/v1700000123/uploads/dev-user/cat%20photo.jpg",
		OriginalFilename: "IMG_0001",
		Version:          1700000123,
		Bytes:            12345,
		Width:            640,
		Height:           480,
		CreatedAt:        time.Date(2023, 11, 14, 22, 15, 23, 0, time.UTC),
	}
	if !res.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", res.CreatedAt, want.CreatedAt)
	}
	res.CreatedAt = want.CreatedAt // compared above; time.Time locations differ
	if *res != want {
		t.Errorf("decoded\n%+v\nwant\n%+v", *res, want)
	}
	// The URL the broker would build must be the one Cloudinary reports.
	if got := c.DeliveryURLFor(res.ResourceType, res.Version, res.PublicID, res.Format); got != res.SecureURL {
		t.Errorf("DeliveryURLFor = %s, Cloudinary says %s", got, res.SecureURL)
	}
}

func TestResourceMissingFields(t *testing.T) {
	// A raw asset has no format, width or height; an answer may also leave
	// out what the broker asked for. Neither is an error.
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if authorized(w, r) {
			writeJSON(w, http.StatusOK, `{"version": 1719316399, "bytes": 7, "something_new": {"x": [1, 2]}}`)
		}
	})
	res, err := c.Resource(context.Background(), "raw", "docs/sheet.xls")
	if err != nil {
		t.Fatalf("Resource: %v", err)
	}
	if res.PublicID != "docs/sheet.xls" || res.ResourceType != "raw" || res.Version != 1719316399 || res.Bytes != 7 {
		t.Errorf("got %+v", *res)
	}
	if res.Format != "" || res.Width != 0 || res.Height != 0 || !res.CreatedAt.IsZero() {
		t.Errorf("absent fields are not zero: %+v", *res)
	}
}

func TestResourceFailures(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		header   string // X-Cld-Error
		wantErr  error
		wantText string
	}{
		{"404", http.StatusNotFound, `{"error":{"message":"Resource not found - uploads/x"}}`, "", ErrNotFound, "Resource not found"},
		{"500", http.StatusInternalServerError, `{"error":{"message":"General Error"}}`, "", ErrUnavailable, "HTTP 500"},
		{"502 html from a proxy", http.StatusBadGateway, `<html>bad gateway</html>`, "", ErrUnavailable, "HTTP 502"},
		{"message from header", http.StatusServiceUnavailable, ``, "Try again later", ErrUnavailable, "Try again later"},
		{"rate limited 420", 420, `{"error":{"message":"Rate Limit Exceeded"}}`, "", ErrUnavailable, "Rate Limit Exceeded"},
		{"rate limited 429", http.StatusTooManyRequests, `{}`, "", ErrUnavailable, "HTTP 429"},
		{"forbidden", http.StatusForbidden, `{"error":{"message":"Admin API is not allowed"}}`, "", ErrUnavailable, "Admin API is not allowed"},
		{"bad request", http.StatusBadRequest, `{"error":{"message":"Invalid resource type"}}`, "", ErrUnavailable, "Invalid resource type"},
		{"secret echoed by a proxy", http.StatusUnauthorized, `{"error":{"message":"bad secret ` + testSecret + `"}}`, "", ErrUnavailable, "[redacted]"},
		{"garbage", http.StatusOK, `{"public_id": "uploads/x", "version": "soon"`, "", ErrUnavailable, "undecodable"},
		{"not json", http.StatusOK, `<html>login</html>`, "", ErrUnavailable, "undecodable"},
		{"bad created_at", http.StatusOK, `{"created_at": "yesterday"}`, "", ErrUnavailable, "undecodable"},
		{"another asset", http.StatusOK, `{"public_id": "uploads/y"}`, "", ErrUnavailable, `"uploads/y"`},
		{"too large", http.StatusOK, `{"public_id": "uploads/x", "x": "` + strings.Repeat("a", maxAnswerBytes) + `"}`, "", ErrUnavailable, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if !authorized(w, r) {
					return
				}
				if tt.header != "" {
					w.Header().Set("X-Cld-Error", tt.header)
				}
				writeJSON(w, tt.status, tt.body)
			})
			res, err := c.Resource(context.Background(), "image", "uploads/x")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, %v; want an error wrapping %v", res, err, tt.wantErr)
			}
			if errors.Is(err, ErrNotFound) && errors.Is(err, ErrUnavailable) {
				t.Errorf("error wraps both sentinels: %v", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			checkNoSecret(t, err)
		})
	}
}

func TestResourceWrongCredentials(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { authorized(w, r) })
	c.APISecret = "not-the-secret"
	_, err := c.Resource(context.Background(), "image", "uploads/x")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "Invalid credentials") {
		t.Fatalf("got %v, want ErrUnavailable with Cloudinary's message", err)
	}
	if strings.Contains(err.Error(), c.APISecret) {
		t.Errorf("error text contains the API secret: %v", err)
	}
}

// slowServer answers only when the client has given up (or after a
// generous bound, so a broken client cannot hang the test run).
func slowServer(w http.ResponseWriter, r *http.Request) {
	// net/http notices a vanished client only once the body has been read,
	// so read it first or the handler (and srv.Close) waits the full bound.
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
		writeJSON(w, http.StatusOK, `{"result":"ok"}`)
	}
}

func TestResourceTimeout(t *testing.T) {
	c := newTestClient(t, slowServer)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Resource(ctx, "image", "uploads/x")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("the call outlived its deadline by far: %v", elapsed)
	}
}

func TestHTTPClientTimeout(t *testing.T) {
	// A client-level timeout (the default one is 10 s) also ends a slow call.
	c := newTestClient(t, slowServer)
	c.HTTP = &http.Client{Timeout: 50 * time.Millisecond}
	err := c.Destroy(context.Background(), "image", "uploads/x")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	prefix := srv.URL
	srv.Close() // nothing listens there any more
	c := &Client{CloudName: testCloud, APIKey: testKey, APISecret: testSecret, UploadPrefix: prefix}
	if _, err := c.Resource(context.Background(), "image", "uploads/x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Resource: got %v, want ErrUnavailable", err)
	}
	if err := c.Destroy(context.Background(), "image", "uploads/x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Destroy: got %v, want ErrUnavailable", err)
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	tests := []struct {
		name         string
		resourceType string
		publicID     string
		modify       func(*Client)
		wantErr      error
	}{
		{"empty public id", "image", "", nil, ErrNotFound},
		{"dot-dot segment", "image", "uploads/../../usage", nil, ErrNotFound},
		{"dot segment", "image", "uploads/./x", nil, ErrNotFound},
		{"leading slash", "image", "/uploads/x", nil, ErrNotFound},
		{"trailing slash", "image", "uploads/x/", nil, ErrNotFound},
		{"double slash", "image", "uploads//x", nil, ErrNotFound},
		{"query character", "image", "uploads/x?y", nil, ErrNotFound},
		{"percent", "image", "uploads/x%2F..", nil, ErrNotFound},
		{"backslash", "image", `uploads\x`, nil, ErrNotFound},
		{"control character", "image", "uploads/x\n", nil, ErrNotFound},
		{"trailing space", "image", "uploads/x ", nil, ErrNotFound},
		{"too long", "image", strings.Repeat("a", 256), nil, ErrNotFound},
		{"auto resource type", "auto", "uploads/x", nil, ErrNotFound},
		{"made-up resource type", "image/../..", "uploads/x", nil, ErrNotFound},
		{"no secret", "image", "uploads/x", func(c *Client) { c.APISecret = "" }, ErrUnavailable},
		{"no cloud", "image", "uploads/x", func(c *Client) { c.CloudName = "" }, ErrUnavailable},
		{"unknown algorithm", "image", "uploads/x", func(c *Client) { c.Algorithm = "md5" }, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, mustNotCall(t))
			if tt.modify != nil {
				tt.modify(c)
			}
			if _, err := c.Resource(context.Background(), tt.resourceType, tt.publicID); !errors.Is(err, tt.wantErr) {
				t.Errorf("Resource: got %v, want %v", err, tt.wantErr)
			}
			if err := c.Destroy(context.Background(), tt.resourceType, tt.publicID); !errors.Is(err, tt.wantErr) {
				t.Errorf("Destroy: got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// fakeDestroy stands in for Cloudinary's destroy endpoint: it checks the
// request the way the server does (signature over every field but api_key
// and signature, algorithm inferred from the hex length, fresh timestamp)
// and answers ok for the assets it holds, "not found" for others.
type fakeDestroy struct {
	t      *testing.T
	alg    signer.Algorithm // the account's algorithm
	assets map[string]bool  // public IDs of image assets
	calls  atomic.Int32
}

func (f *fakeDestroy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/v1_1/demo/image/destroy" {
		f.t.Errorf("got %s %s, want POST /v1_1/demo/image/destroy", r.Method, r.URL.Path)
		writeJSON(w, http.StatusNotFound, `{"error":{"message":"no route"}}`)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		f.t.Errorf("Content-Type = %q", ct)
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, `{"error":{"message":"bad form"}}`)
		return
	}
	if got := r.PostForm.Get("api_key"); got != testKey {
		writeJSON(w, http.StatusBadRequest, `{"error":{"message":"Missing required parameter - api_key"}}`)
		return
	}
	params := map[string]string{}
	for k, v := range r.PostForm {
		if len(v) != 1 {
			f.t.Errorf("field %s sent %d times", k, len(v))
		}
		if k != "api_key" && k != "signature" {
			params[k] = v[0]
		}
	}
	for k, want := range map[string]string{"type": "upload", "invalidate": "true"} {
		if params[k] != want {
			f.t.Errorf("%s = %q, want %q", k, params[k], want)
		}
	}
	if len(params) != 4 {
		f.t.Errorf("signed fields %v, want public_id, timestamp, type and invalidate", params)
	}
	ts, err := strconv.ParseInt(params["timestamp"], 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		f.t.Errorf("timestamp %q is not the current Unix time in seconds", params["timestamp"])
	}
	sig := r.PostForm.Get("signature")
	wantLen := map[signer.Algorithm]int{signer.SHA1: 40, signer.SHA256: 64}[f.alg]
	if len(sig) != wantLen || signer.VerifyCloudinaryUpload(params, testSecret, sig) != 2 {
		msg := fmt.Sprintf("Invalid Signature %s. String to sign - '%s'.", sig, signer.CloudinaryStringToSign(params, 2))
		w.Header().Set("X-Cld-Error", msg)
		writeJSON(w, http.StatusUnauthorized, fmt.Sprintf(`{"error":{"message":%q}}`, msg))
		return
	}
	if f.assets[params["public_id"]] {
		delete(f.assets, params["public_id"])
		writeJSON(w, http.StatusOK, `{"result":"ok"}`)
		return
	}
	writeJSON(w, http.StatusOK, `{"result":"not found"}`)
}

func TestDestroy(t *testing.T) {
	for _, tt := range []struct {
		name      string
		clientAlg signer.Algorithm
		account   signer.Algorithm
	}{
		{"default algorithm", "", signer.SHA1},
		{"sha1", signer.SHA1, signer.SHA1},
		{"sha256", signer.SHA256, signer.SHA256},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeDestroy{t: t, alg: tt.account, assets: map[string]bool{"uploads/dev-user/x": true}}
			c := newTestClient(t, fake.ServeHTTP)
			c.Algorithm = tt.clientAlg

			if err := c.Destroy(context.Background(), "image", "uploads/dev-user/x"); err != nil {
				t.Fatalf("first destroy: %v", err)
			}
			if fake.assets["uploads/dev-user/x"] {
				t.Error("the asset is still there")
			}
			err := c.Destroy(context.Background(), "image", "uploads/dev-user/x")
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("second destroy: got %v, want ErrNotFound", err)
			}
			if fake.calls.Load() != 2 {
				t.Errorf("%d calls, want 2", fake.calls.Load())
			}
		})
	}
}

func TestDestroyWrongSecret(t *testing.T) {
	fake := &fakeDestroy{t: t, alg: signer.SHA1, assets: map[string]bool{"uploads/x": true}}
	c := newTestClient(t, fake.ServeHTTP)
	c.APISecret = "wrong_secret"
	err := c.Destroy(context.Background(), "image", "uploads/x")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "Invalid Signature") {
		t.Fatalf("got %v, want ErrUnavailable with Cloudinary's message", err)
	}
	if strings.Contains(err.Error(), c.APISecret) {
		t.Errorf("error text contains the API secret: %v", err)
	}
	if !fake.assets["uploads/x"] {
		t.Error("a wrongly signed destroy removed the asset")
	}
}

func TestDestroyFailures(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantText string
	}{
		{"500", http.StatusInternalServerError, `{"error":{"message":"General Error"}}`, "General Error"},
		{"404 status is not a missing asset", http.StatusNotFound, `{"error":{"message":"Unknown cloud"}}`, "Unknown cloud"},
		{"rate limited", 420, `{"error":{"message":"Rate Limit Exceeded"}}`, "Rate Limit Exceeded"},
		{"unexpected result", http.StatusOK, `{"result":"error"}`, `"error"`},
		{"no result", http.StatusOK, `{}`, "unexpected result"},
		{"garbage", http.StatusOK, `{"result":`, "undecodable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tt.status, tt.body) })
			err := c.Destroy(context.Background(), "image", "uploads/x")
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, want ErrUnavailable only", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			checkNoSecret(t, err)
		})
	}
}

func TestDestroyTimeout(t *testing.T) {
	c := newTestClient(t, slowServer)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := c.Destroy(ctx, "image", "uploads/x")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
}

func TestDeliveryURLFor(t *testing.T) {
	c := &Client{CloudName: "demo", DeliveryURL: "https://res.cloudinary.com"}
	tests := []struct {
		name         string
		delivery     string
		resourceType string
		version      int64
		publicID     string
		format       string
		want         string
	}{
		{"image with format", "", "image", 1700000123, "user-uploads/42/avatar_42", "jpg",
			"https://res.cloudinary.com/demo/image/upload/v1700000123/user-uploads/42/avatar_42.jpg"},
		{"raw keeps its extension in the id", "", "raw", 1719316399, "sample_spreadsheet.xls", "",
			"https://res.cloudinary.com/demo/raw/upload/v1719316399/sample_spreadsheet.xls"},
		{"video", "", "video", 1, "uploads/u/clip", "mp4",
			"https://res.cloudinary.com/demo/video/upload/v1/uploads/u/clip.mp4"},
		{"emulator base with trailing slash", "http://127.0.0.1:3000/emulator/cloudinary/", "image", 5, "uploads/u/a", "png",
			"http://127.0.0.1:3000/emulator/cloudinary/demo/image/upload/v5/uploads/u/a.png"},
		{"escaped segments", "", "image", 5, "uploads/a b/é", "png",
			"https://res.cloudinary.com/demo/image/upload/v5/uploads/a%20b/%C3%A9.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := *c
			if tt.delivery != "" {
				cc.DeliveryURL = tt.delivery
			}
			if got := cc.DeliveryURLFor(tt.resourceType, tt.version, tt.publicID, tt.format); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	// The zero value points at Cloudinary's own CDN.
	zero := &Client{CloudName: "demo"}
	if got, want := zero.DeliveryURLFor("image", 1, "a", "png"), "https://res.cloudinary.com/demo/image/upload/v1/a.png"; got != want {
		t.Errorf("default delivery URL: got %s, want %s", got, want)
	}
}
