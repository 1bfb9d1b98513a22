package emulator

import (
	"bytes"
	"crypto/md5"  //nolint:gosec // etag check
	"crypto/sha1" //nolint:gosec // Cloudinary's digest
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
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

// testNow is 2023-11-14T22:13:20Z, the timestamp of most spec vectors.
var testNow = time.Unix(1700000000, 0)

type testEnv struct {
	e   *Emulator
	srv *httptest.Server
	now atomic.Int64 // Unix seconds the emulator's clock reads
}

func (env *testEnv) setNow(unix int64) { env.now.Store(unix) }

func newEnv(t *testing.T, mutate func(*Options)) *testEnv {
	t.Helper()
	env := &testEnv{}
	env.setNow(testNow.Unix())
	opts := Options{
		Cloudinary:              &CloudinaryAccount{CloudName: testCloud, APIKey: testKey, APISecret: testSecret},
		Now:                     func() time.Time { return time.Unix(env.now.Load(), 0) },
		NotificationRetryDelays: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&opts)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.e, env.srv = e, httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		env.srv.Close()
		_ = e.Close()
	})
	return env
}

func (env *testEnv) api(resourceType, action string) string {
	return fmt.Sprintf("%s/cloudinary/v1_1/%s/%s/%s", env.srv.URL, testCloud, resourceType, action)
}

// sign adds signature and api_key to params the way the SDKs do.
func sign(params map[string]string, alg signer.Algorithm, version int) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		out[k] = v
	}
	out["signature"] = signer.SignCloudinary(params, testSecret, alg, version)
	out["api_key"] = testKey
	return out
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("decode %q: %v", a.body, err)
	}
	return m
}

func do(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

// postMultipart sends fields and, when filename is set, a file part the
// way the node SDK does (application/octet-stream, last).
func postMultipart(t *testing.T, target string, fields map[string]string, filename string, data []byte) answer {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if filename != "" {
		fw, err := mw.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, target, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return do(t, req)
}

// postURLEncoded sends fields urlencoded; with no content type, like the
// Go SDK's postForm.
func postURLEncoded(t *testing.T, target string, fields url.Values, contentType string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(fields.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return do(t, req)
}

func get(t *testing.T, target string, auth bool) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.SetBasicAuth(testKey, testSecret)
	}
	return do(t, req)
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func wantError(t *testing.T, a answer, status int, msg string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status = %d, want %d; body %s", a.status, status, a.body)
	}
	want, _ := marshalJSON(map[string]any{"error": map[string]string{"message": msg}})
	if string(a.body) != string(want) {
		t.Fatalf("body = %s\nwant   %s", a.body, want)
	}
	if got := a.header.Get("X-Cld-Error"); got != msg {
		t.Fatalf("X-Cld-Error = %q, want %q", got, msg)
	}
}

func TestUploadSignedMultipart(t *testing.T) {
	env := newEnv(t, nil)
	data := pngBytes(t, 3, 2)
	params := map[string]string{"timestamp": "1700000000", "public_id": "uploads/u1/abc", "overwrite": "false"}
	a := postMultipart(t, env.api("auto", "upload"), sign(params, signer.SHA1, 2), "cat.png", data)
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	sum := md5.Sum(data) //nolint:gosec // etag
	wantURL := env.srv.URL + "/cloudinary/demo/image/upload/v1700000000/uploads/u1/abc.png"
	for k, want := range map[string]any{
		"public_id": "uploads/u1/abc", "version": 1700000000.0, "resource_type": "image", "type": "upload",
		"format": "png", "width": 3.0, "height": 2.0, "bytes": float64(len(data)), "pages": 1.0,
		"etag": hex.EncodeToString(sum[:]), "placeholder": false, "url": wantURL, "secure_url": wantURL,
		"created_at": "2023-11-14T22:13:20Z", "original_filename": "cat", "api_key": testKey,
		"display_name": "abc", "asset_folder": "",
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	if tags, ok := m["tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("tags = %#v, want []", m["tags"])
	}
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, k := range []string{"asset_id", "version_id"} {
		if s, _ := m[k].(string); !hex32.MatchString(s) {
			t.Errorf("%s = %#v, want 32 hex", k, m[k])
		}
	}
	if _, ok := m["existing"]; ok {
		t.Errorf("fresh upload reports existing")
	}
	if !signer.VerifyCloudinaryResponse("uploads/u1/abc", 1700000000, testSecret, m["signature"].(string), signer.SHA1) {
		t.Errorf("response signature %v does not verify", m["signature"])
	}
}

func TestUploadResponseSignedWithAccountAlgorithm(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.Cloudinary.Algorithm = signer.SHA256 })
	params := map[string]string{"timestamp": "1700000000", "public_id": "p"}
	a := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1))
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if sig := a.json(t)["signature"].(string); !signer.VerifyCloudinaryResponse("p", 1700000000, testSecret, sig, signer.SHA256) {
		t.Errorf("signature %s is not the SHA-256 response signature", sig)
	}
}

// The node SDK 2.11.0 wire capture of spec §2.6 / vector U15, replayed.
func TestUploadNodeSDKWireCapture(t *testing.T) {
	env := newEnv(t, nil)
	fields := map[string]string{
		"folder": "user-uploads/42", "overwrite": "1", "public_id": "avatar_42", "timestamp": "1700000000",
		"unique_filename": "0", "context": `alt=A cat \| sleeping|caption=x\=y`, "tags": "a,b",
		"signature": "447235cc9d276c5a9246e74243dc3097374231b7", "api_key": testKey,
	}
	a := postMultipart(t, env.api("image", "upload"), fields, "px.gif", pngBytes(t, 1, 1))
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	if m["public_id"] != "user-uploads/42/avatar_42" || m["folder"] != "user-uploads/42" {
		t.Errorf("public_id/folder = %v/%v", m["public_id"], m["folder"])
	}
	ctx, _ := json.Marshal(m["context"])
	if string(ctx) != `{"custom":{"alt":"A cat | sleeping","caption":"x=y"}}` {
		t.Errorf("context = %s", ctx)
	}
	if tags, _ := json.Marshal(m["tags"]); string(tags) != `["a","b"]` {
		t.Errorf("tags = %s", tags)
	}
}

func TestUploadSignatureVariants(t *testing.T) {
	env := newEnv(t, nil)
	img := pngBytes(t, 1, 1)
	cases := []struct {
		name    string
		params  map[string]string
		alg     signer.Algorithm
		version int
	}{
		{"sha256", map[string]string{"timestamp": "1700000000", "public_id": "s256"}, signer.SHA256, 2},
		// With "&" in a value v1 and v2 strings differ; both are accepted.
		{"v1 string", map[string]string{"timestamp": "1700000000", "public_id": "v1", "notification_url": "http://127.0.0.1:1/hook?a=1&b=2"}, signer.SHA1, 1},
		{"v2 string", map[string]string{"timestamp": "1700000000", "public_id": "v2", "notification_url": "http://127.0.0.1:1/hook?a=1&b=2"}, signer.SHA1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := postMultipart(t, env.api("image", "upload"), sign(tc.params, tc.alg, tc.version), "x.png", img)
			if a.status != http.StatusOK {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
		})
	}
}

func TestUploadArrayFieldsFolded(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000", "public_id": "arr", "tags": "a,b,c"}
	fields := sign(params, signer.SHA1, 2)
	v := url.Values{}
	for k, val := range fields {
		if k != "tags" {
			v.Set(k, val)
		}
	}
	// Go-SDK style indexed keys; "tags[10]" sorts before "tags[2]" as text.
	v.Set("tags[0]", "a")
	v.Set("tags[2]", "c")
	v.Set("tags[1]", "b")
	v.Set("file", "data:image/png;base64,"+base64.StdEncoding.EncodeToString(pngBytes(t, 1, 1)))
	a := postURLEncoded(t, env.api("image", "upload"), v, "")
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if tags, _ := json.Marshal(a.json(t)["tags"]); string(tags) != `["a","b","c"]` {
		t.Errorf("tags = %s", tags)
	}
}

func TestUploadTamperedIsRejected(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000", "public_id": "uploads/u1/abc"}
	signed := sign(params, signer.SHA1, 2)
	sig := signed["signature"]

	extra := sign(params, signer.SHA1, 2)
	extra["tags"] = "smuggled"
	a := postMultipart(t, env.api("auto", "upload"), extra, "x.png", pngBytes(t, 1, 1))
	wantError(t, a, http.StatusUnauthorized,
		"Invalid Signature "+sig+". String to sign - 'public_id=uploads/u1/abc&tags=smuggled&timestamp=1700000000'.")

	changed := sign(params, signer.SHA1, 2)
	changed["public_id"] = "uploads/u2/abc"
	a = postMultipart(t, env.api("auto", "upload"), changed, "x.png", pngBytes(t, 1, 1))
	wantError(t, a, http.StatusUnauthorized,
		"Invalid Signature "+sig+". String to sign - 'public_id=uploads/u2/abc&timestamp=1700000000'.")

	// The message shows the v2 string, with "&" inside values escaped.
	amp := map[string]string{"timestamp": "1700000000", "notification_url": "http://h/x?a=1&b=2"}
	bad := sign(amp, signer.SHA1, 2)
	bad["signature"] = strings.Repeat("0", 40)
	a = postMultipart(t, env.api("auto", "upload"), bad, "x.png", pngBytes(t, 1, 1))
	wantError(t, a, http.StatusUnauthorized,
		"Invalid Signature "+strings.Repeat("0", 40)+". String to sign - 'notification_url=http://h/x?a=1%26b=2&timestamp=1700000000'.")
}

// A field posted with an empty value is signed as "name=" by the server.
func TestUploadEmptyFieldIsSigned(t *testing.T) {
	env := newEnv(t, nil)
	fields := map[string]string{"timestamp": "1700000000", "public_id": "empty", "folder": ""}
	// Signed by an SDK, which drops the empty field: refused, as at Cloudinary.
	a := postMultipart(t, env.api("image", "upload"), sign(fields, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1))
	if a.status != http.StatusUnauthorized || !strings.Contains(string(a.body), "String to sign - 'folder=&public_id=empty&timestamp=1700000000'") {
		t.Fatalf("status %d body %s", a.status, a.body)
	}
	// Signed over what was sent: accepted.
	sum := sha1Hex("folder=&public_id=empty&timestamp=1700000000" + testSecret)
	fields["signature"], fields["api_key"] = sum, testKey
	a = postMultipart(t, env.api("image", "upload"), fields, "x.png", pngBytes(t, 1, 1))
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s)) //nolint:gosec // Cloudinary's digest
	return hex.EncodeToString(sum[:])
}

func TestUploadStaleTimestamp(t *testing.T) {
	env := newEnv(t, nil)
	cases := []struct{ ts, msg string }{
		{"1699996399", "Stale request - reported time is 2023-11-14 21:13:19 +0000 which is more than 1 hour ago"},
		{"1700003601", "Stale request - reported time is 2023-11-14 23:13:21 +0000 which is more than 1 hour in the future"},
	}
	for _, tc := range cases {
		params := map[string]string{"timestamp": tc.ts, "public_id": "stale"}
		a := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1))
		wantError(t, a, http.StatusBadRequest, tc.msg)
	}
	// Exactly one hour old is still fine.
	params := map[string]string{"timestamp": "1699996400", "public_id": "edge"}
	if a := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)); a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
}

// The Go SDK posts urlencoded bodies without Content-Type, to /auto/upload,
// with an unsigned resource_type field and the file as a data URI.
func TestUploadGoSDKStyleNoContentType(t *testing.T) {
	env := newEnv(t, nil)
	data := pngBytes(t, 4, 5)
	params := map[string]string{"timestamp": "1700000000", "public_id": "go/sdk", "overwrite": "true"}
	v := url.Values{}
	for k, val := range sign(params, signer.SHA1, 2) {
		v.Set(k, val)
	}
	v.Set("resource_type", "image")
	v.Set("file", "data:image/png;base64,"+base64.StdEncoding.EncodeToString(data))
	a := postURLEncoded(t, env.api("auto", "upload"), v, "")
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	if m["width"] != 4.0 || m["height"] != 5.0 || m["original_filename"] != "file" || m["bytes"] != float64(len(data)) {
		t.Errorf("response %s", a.body)
	}
	d := get(t, m["secure_url"].(string), false)
	if !bytes.Equal(d.body, data) {
		t.Errorf("delivered %d bytes, want the uploaded %d", len(d.body), len(data))
	}
}

func TestUploadRequestErrors(t *testing.T) {
	env := newEnv(t, nil)
	img := pngBytes(t, 1, 1)
	ok := map[string]string{"timestamp": "1700000000", "public_id": "e"}

	noKey := sign(ok, signer.SHA1, 2)
	delete(noKey, "api_key")
	wantError(t, postMultipart(t, env.api("image", "upload"), noKey, "x.png", img),
		http.StatusBadRequest, "Missing required parameter - api_key")

	wantError(t, postMultipart(t, env.api("image", "upload"), sign(ok, signer.SHA1, 2), "", nil),
		http.StatusBadRequest, "Missing required parameter - file")

	wantError(t, postMultipart(t, env.api("image", "upload"), map[string]string{"public_id": "x"}, "x.png", img),
		http.StatusBadRequest, "Upload preset must be specified when using unsigned upload")

	wantError(t, postMultipart(t, env.api("image", "upload"), map[string]string{"upload_preset": "anon"}, "x.png", img),
		http.StatusBadRequest, "Upload preset not found")

	unknown := sign(ok, signer.SHA1, 2)
	unknown["api_key"] = "999"
	wantError(t, postMultipart(t, env.api("image", "upload"), unknown, "x.png", img),
		http.StatusUnauthorized, "Unknown API key 999")

	wrongCloud := strings.Replace(env.api("image", "upload"), "/demo/", "/other/", 1)
	wantError(t, postMultipart(t, wrongCloud, sign(ok, signer.SHA1, 2), "x.png", img),
		http.StatusUnauthorized, "Invalid cloud_name other")

	remote := sign(ok, signer.SHA1, 2)
	remote["file"] = "https://example.com/cat.png"
	if a := postMultipart(t, env.api("image", "upload"), remote, "", nil); a.status != http.StatusBadRequest ||
		!strings.Contains(a.header.Get("X-Cld-Error"), "Unsupported source URL: https://example.com/cat.png") {
		t.Errorf("remote URL: %d %s", a.status, a.body)
	}

	wantError(t, postMultipart(t, env.api("image", "upload"), sign(ok, signer.SHA1, 2), "notes.txt", []byte("hello")),
		http.StatusBadRequest, "Invalid image file")

	badID := map[string]string{"timestamp": "1700000000", "public_id": "a?b"}
	wantError(t, postMultipart(t, env.api("image", "upload"), sign(badID, signer.SHA1, 2), "x.png", img),
		http.StatusBadRequest, "public_id (a?b) is invalid")

	// Nothing of the refused uploads was kept.
	if list := get(t, env.srv.URL+"/cloudinary/_emulator/assets", false); string(list.body) != `{"resources":[]}` {
		t.Errorf("assets after refused uploads: %s", list.body)
	}
}

func TestUploadBasicAuthNeedsNoSignature(t *testing.T) {
	env := newEnv(t, nil)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("public_id", "basic")
	fw, _ := mw.CreateFormFile("file", "x.png")
	_, _ = fw.Write(pngBytes(t, 1, 1))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, env.api("image", "upload"), bytes.NewReader(buf.Bytes()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth(testKey, testSecret)
	if a := do(t, req); a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	req, _ = http.NewRequest(http.MethodPost, env.api("image", "upload"), bytes.NewReader(buf.Bytes()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth(testKey, "wrong")
	wantError(t, do(t, req), http.StatusUnauthorized, "api_secret mismatch")
}

func TestUploadOverwrite(t *testing.T) {
	env := newEnv(t, nil)
	first, second := pngBytes(t, 1, 1), pngBytes(t, 2, 2)
	params := map[string]string{"timestamp": "1700000000", "public_id": "same", "overwrite": "false"}
	a1 := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "a.png", first).json(t)

	env.setNow(1700000100)
	params["timestamp"] = "1700000100"
	a := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "b.png", second)
	m := a.json(t)
	if m["existing"] != true || m["version"] != a1["version"] || m["asset_id"] != a1["asset_id"] || m["width"] != 1.0 {
		t.Fatalf("overwrite=false answer: %s", a.body)
	}
	if !signer.VerifyCloudinaryResponse("same", 1700000000, testSecret, m["signature"].(string), signer.SHA1) {
		t.Errorf("existing answer's signature does not verify")
	}
	if d := get(t, a1["secure_url"].(string), false); !bytes.Equal(d.body, first) {
		t.Errorf("overwrite=false replaced the bytes")
	}

	params["overwrite"] = "true"
	m = postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "b.png", second).json(t)
	if m["overwritten"] != true || m["version"] != 1700000100.0 || m["asset_id"] != a1["asset_id"] || m["width"] != 2.0 {
		t.Fatalf("overwrite=true answer: %v", m)
	}
	if d := get(t, m["secure_url"].(string), false); !bytes.Equal(d.body, second) {
		t.Errorf("overwrite=true kept the old bytes")
	}
}

func TestAdminResource(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000", "public_id": "uploads/u1/cat"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "cat.png", pngBytes(t, 7, 8)).json(t)

	lookup := env.srv.URL + "/cloudinary/v1_1/demo/resources/image/upload/"
	wantError(t, get(t, lookup+"uploads/u1/cat", false), http.StatusUnauthorized, "Must supply api_key")
	req, _ := http.NewRequest(http.MethodGet, lookup+"uploads/u1/cat", nil)
	req.SetBasicAuth(testKey, "nope")
	wantError(t, do(t, req), http.StatusUnauthorized, "api_secret mismatch")
	wantError(t, get(t, lookup+"uploads/u1/dog", true), http.StatusNotFound, "Resource not found - uploads/u1/dog")

	a := get(t, lookup+"uploads/u1/cat", true)
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	for _, k := range []string{"asset_id", "public_id", "format", "version", "resource_type", "type", "created_at", "bytes", "width", "height", "url", "secure_url", "original_filename"} {
		if m[k] != up[k] {
			t.Errorf("%s = %#v, upload said %#v", k, m[k], up[k])
		}
	}
	// An escaped slash (encodeURIComponent) names the same asset.
	if a := get(t, lookup+"uploads%2Fu1%2Fcat", true); a.status != http.StatusOK {
		t.Errorf("escaped public ID: %d %s", a.status, a.body)
	}
}

func TestDestroy(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000", "public_id": "gone"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)).json(t)

	destroy := func() answer {
		v := url.Values{}
		for k, val := range sign(map[string]string{"timestamp": "1700000000", "public_id": "gone", "invalidate": "true"}, signer.SHA1, 2) {
			v.Set(k, val)
		}
		return postURLEncoded(t, env.api("image", "destroy"), v, "")
	}
	if a := destroy(); a.status != http.StatusOK || string(a.body) != `{"result":"ok"}` {
		t.Fatalf("first destroy: %d %s", a.status, a.body)
	}
	if a := destroy(); a.status != http.StatusOK || string(a.body) != `{"result":"not found"}` {
		t.Fatalf("second destroy: %d %s", a.status, a.body)
	}
	if a := get(t, up["secure_url"].(string), false); a.status != http.StatusNotFound {
		t.Errorf("delivery after destroy: %d", a.status)
	}

	// Destroy checks signatures like upload does.
	tampered := sign(map[string]string{"timestamp": "1700000000", "public_id": "x"}, signer.SHA1, 2)
	tampered["public_id"] = "y"
	if a := postMultipart(t, env.api("image", "destroy"), tampered, "", nil); a.status != http.StatusUnauthorized {
		t.Errorf("tampered destroy: %d %s", a.status, a.body)
	}
	wantError(t, postMultipart(t, env.api("image", "destroy"), map[string]string{"public_id": "x"}, "", nil),
		http.StatusBadRequest, "Missing required parameter - api_key")
}

func TestDelivery(t *testing.T) {
	env := newEnv(t, nil)
	data := pngBytes(t, 2, 2)
	params := map[string]string{"timestamp": "1700000000", "public_id": "folder/pic"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", data).json(t)
	sum := md5.Sum(data) //nolint:gosec // etag

	base := env.srv.URL + "/cloudinary/demo/image/upload/"
	for _, p := range []string{
		"v1700000000/folder/pic.png",
		"folder/pic.png",
		"v1/folder/pic.png",
		"c_crop,h_20,w_10/v1700000000/folder/pic.png",
		"c_crop,h_20,w_10/f_auto/folder/pic.png",
		"folder/pic.png?_a=BAMAK+Ju0",
		"folder/pic",
	} {
		a := get(t, base+p, false)
		if a.status != http.StatusOK || !bytes.Equal(a.body, data) {
			t.Errorf("%s: status %d, %d bytes", p, a.status, len(a.body))
			continue
		}
		if ct := a.header.Get("Content-Type"); ct != "image/png" {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		if et := a.header.Get("ETag"); et != `"`+hex.EncodeToString(sum[:])+`"` {
			t.Errorf("%s: ETag %q", p, et)
		}
		if a.header.Get("Cache-Control") == "" {
			t.Errorf("%s: no Cache-Control", p)
		}
	}
	if up["secure_url"] != base+"v1700000000/folder/pic.png" {
		t.Errorf("secure_url = %v", up["secure_url"])
	}
	for _, p := range []string{"folder/other.png", "pic.png", "v1700000000/c_crop/folder/pic.png"} {
		if a := get(t, base+p, false); a.status != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, a.status)
		}
	}
	if a := get(t, env.srv.URL+"/cloudinary/other/image/upload/folder/pic.png", false); a.status != http.StatusNotFound {
		t.Errorf("other cloud: %d", a.status)
	}
}

func TestDeliveryPrivateNeedsURLSignature(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000", "public_id": "secret", "type": "private"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)).json(t)
	if up["type"] != "private" {
		t.Fatalf("type = %v", up["type"])
	}
	base := env.srv.URL + "/cloudinary/demo/image/private/"
	if a := get(t, base+"v1700000000/secret.png", false); a.status != http.StatusUnauthorized {
		t.Errorf("unsigned private delivery: %d", a.status)
	}
	sig := signer.CloudinaryURLSignature("c_crop,h_20,w_10/secret.png", testSecret, signer.SHA1, 8)
	if a := get(t, base+"s--"+sig+"--/c_crop,h_20,w_10/v1700000000/secret.png", false); a.status != http.StatusOK {
		t.Errorf("signed private delivery: %d %s", a.status, a.body)
	}
	long := signer.CloudinaryURLSignature("secret.png", testSecret, signer.SHA256, 32)
	if a := get(t, base+"s--"+long+"--/secret.png", false); a.status != http.StatusOK {
		t.Errorf("long-signed private delivery: %d %s", a.status, a.body)
	}
	if a := get(t, base+"s--"+sig+"--/secret.png", false); a.status != http.StatusUnauthorized {
		t.Errorf("signature for another transformation: %d", a.status)
	}
}

func TestAutoResourceType(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000"}

	img := postMultipart(t, env.api("auto", "upload"), sign(params, signer.SHA1, 2), "photo.bin", pngBytes(t, 9, 4)).json(t)
	if img["resource_type"] != "image" || img["format"] != "png" || img["width"] != 9.0 || img["height"] != 4.0 {
		t.Errorf("PNG via auto: %v", img)
	}
	if id, _ := img["public_id"].(string); !regexp.MustCompile(`^[a-z0-9]{20}$`).MatchString(id) {
		t.Errorf("generated public_id %q", id)
	}

	text := []byte("just some notes\n")
	raw := postMultipart(t, env.api("auto", "upload"), sign(params, signer.SHA1, 2), "notes.txt", text).json(t)
	id, _ := raw["public_id"].(string)
	if raw["resource_type"] != "raw" || !regexp.MustCompile(`^[a-z0-9]{20}\.txt$`).MatchString(id) {
		t.Fatalf("text via auto: %v", raw)
	}
	for _, k := range []string{"format", "width", "height", "pages"} {
		if _, ok := raw[k]; ok {
			t.Errorf("raw answer has %s", k)
		}
	}
	if raw["secure_url"] != env.srv.URL+"/cloudinary/demo/raw/upload/v1700000000/"+id {
		t.Errorf("raw secure_url = %v", raw["secure_url"])
	}
	d := get(t, raw["secure_url"].(string), false)
	if !bytes.Equal(d.body, text) || !strings.HasPrefix(d.header.Get("Content-Type"), "text/plain") {
		t.Errorf("raw delivery: %q %q", d.body, d.header.Get("Content-Type"))
	}

	video := postMultipart(t, env.api("auto", "upload"), sign(params, signer.SHA1, 2), "clip.mp4", []byte("not really a video")).json(t)
	if video["resource_type"] != "video" || video["format"] != "mp4" {
		t.Errorf("mp4 via auto: %v", video)
	}

	withName := map[string]string{"timestamp": "1700000000", "use_filename": "1", "unique_filename": "0", "folder": "docs"}
	named := postMultipart(t, env.api("raw", "upload"), sign(withName, signer.SHA1, 2), "My Report.pdf", []byte("%PDF-1.4")).json(t)
	if named["public_id"] != "docs/My_Report.pdf" || named["original_filename"] != "My Report" {
		t.Errorf("use_filename raw: %v", named)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	env := newEnv(t, func(o *Options) { o.Dir = dir })
	data := pngBytes(t, 3, 3)
	params := map[string]string{"timestamp": "1700000000", "public_id": "kept/one"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", data).json(t)
	if up["public_id"] != "kept/one" {
		t.Fatalf("upload: %v", up)
	}
	env.srv.Close()
	_ = env.e.Close()

	again := newEnv(t, func(o *Options) { o.Dir = dir })
	a := get(t, again.srv.URL+"/cloudinary/v1_1/demo/resources/image/upload/kept/one", true)
	if a.status != http.StatusOK || a.json(t)["asset_id"] != up["asset_id"] {
		t.Fatalf("admin after restart: %d %s", a.status, a.body)
	}
	d := get(t, again.srv.URL+"/cloudinary/demo/image/upload/v1700000000/kept/one.png", false)
	if d.status != http.StatusOK || !bytes.Equal(d.body, data) {
		t.Fatalf("delivery after restart: %d, %d bytes", d.status, len(d.body))
	}
}

type received struct {
	body      []byte
	timestamp string
	signature string
	ctype     string
}

// hookReceiver answers failFirst requests with 500, then 200, and reports
// every request it sees.
func hookReceiver(t *testing.T, failFirst int) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 16)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{body, r.Header.Get("X-Cld-Timestamp"), r.Header.Get("X-Cld-Signature"), r.Header.Get("Content-Type")}
		mu.Lock()
		n++
		fail := n <= failFirst
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// receive waits for what a hook receiver of either provider got next.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s arrived", what)
		var zero T
		return zero
	}
}

func TestNotificationsSignedAndRetried(t *testing.T) {
	env := newEnv(t, nil)
	hook, ch := hookReceiver(t, 1)
	params := map[string]string{"timestamp": "1700000000", "public_id": "n/one", "notification_url": hook.URL + "/webhooks/cloudinary?x=1&y=2"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1))
	if up.status != http.StatusOK {
		t.Fatalf("upload: %d %s", up.status, up.body)
	}

	first, second := receive(t, ch, "notification"), receive(t, ch, "notification") // the first got a 500
	if !bytes.Equal(first.body, second.body) {
		t.Errorf("retry sent a different body")
	}
	if second.ctype != "application/json" || second.timestamp != "1700000000" {
		t.Errorf("headers: %+v", second)
	}
	if !signer.VerifyCloudinaryNotification(second.body, second.timestamp, second.signature, testSecret, signer.SHA1) {
		t.Errorf("X-Cld-Signature %s does not verify", second.signature)
	}
	var m map[string]any
	if err := json.Unmarshal(second.body, &m); err != nil {
		t.Fatal(err)
	}
	if m["notification_type"] != "upload" || m["public_id"] != "n/one" || m["signature"] != up.json(t)["signature"] {
		t.Errorf("upload notification: %s", second.body)
	}
	if bytes.Contains(second.body, []byte("\n")) || bytes.Contains(second.body, []byte(`\u0026`)) {
		t.Errorf("notification body is not compact, unescaped JSON: %s", second.body)
	}

	del := sign(map[string]string{"timestamp": "1700000000", "public_id": "n/one", "notification_url": hook.URL}, signer.SHA1, 2)
	if a := postMultipart(t, env.api("image", "destroy"), del, "", nil); string(a.body) != `{"result":"ok"}` {
		t.Fatalf("destroy: %d %s", a.status, a.body)
	}
	got := receive(t, ch, "notification")
	if !signer.VerifyCloudinaryNotification(got.body, got.timestamp, got.signature, testSecret, signer.SHA1) {
		t.Errorf("delete notification signature does not verify")
	}
	var d struct {
		NotificationType string `json:"notification_type"`
		Resources        []struct {
			ResourceType, Type, PublicID, AssetID string
			Version                               int64
		} `json:"resources"`
	}
	if err := json.Unmarshal(got.body, &d); err != nil {
		t.Fatal(err)
	}
	if d.NotificationType != "delete" || len(d.Resources) != 1 || d.Resources[0].Version != 1700000000 ||
		!strings.Contains(string(got.body), `"public_id":"n/one"`) || !strings.Contains(string(got.body), `"resource_type":"image"`) {
		t.Errorf("delete notification: %s", got.body)
	}
}

func TestNotificationGivesUpAfterRetries(t *testing.T) {
	env := newEnv(t, nil)
	hook, ch := hookReceiver(t, 100)
	params := map[string]string{"timestamp": "1700000000", "public_id": "n/fail", "notification_url": hook.URL}
	postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1))
	for range 4 { // one attempt and three retries
		receive(t, ch, "notification")
	}
	select {
	case <-ch:
		t.Errorf("a fifth attempt was made")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	e, err := New(Options{
		Cloudinary: &CloudinaryAccount{CloudName: testCloud, APIKey: testKey, APISecret: testSecret},
		Now:        func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/emulator/", http.StripPrefix("/emulator", e.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	params := map[string]string{"timestamp": "1700000000", "public_id": "pre/fixed"}
	up := postMultipart(t, srv.URL+"/emulator/cloudinary/v1_1/demo/image/upload", sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)).json(t)
	want := srv.URL + "/emulator/cloudinary/demo/image/upload/v1700000000/pre/fixed.png"
	if up["secure_url"] != want {
		t.Fatalf("secure_url = %v, want %s", up["secure_url"], want)
	}
	if a := get(t, want, false); a.status != http.StatusOK {
		t.Errorf("delivery under prefix: %d", a.status)
	}
}

func TestConfiguredDeliveryURL(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.CloudinaryDeliveryURL = "https://res.example.test/" })
	params := map[string]string{"timestamp": "1700000000", "public_id": "d"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)).json(t)
	if up["secure_url"] != "https://res.example.test/demo/image/upload/v1700000000/d.png" ||
		up["url"] != "http://res.example.test/demo/image/upload/v1700000000/d.png" {
		t.Errorf("url/secure_url = %v / %v", up["url"], up["secure_url"])
	}
}

func TestBodyLimit(t *testing.T) {
	env := newEnv(t, func(o *Options) { o.MaxBodyBytes = 4096 })
	params := map[string]string{"timestamp": "1700000000", "public_id": "big"}
	a := postMultipart(t, env.api("raw", "upload"), sign(params, signer.SHA1, 2), "big.bin", make([]byte, 10000))
	wantError(t, a, http.StatusBadRequest, "File size too large. Maximum is 4096.")
}

func TestFaults(t *testing.T) {
	env := newEnv(t, nil)
	params := map[string]string{"timestamp": "1700000000", "public_id": "f"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)).json(t)

	env.e.SetFaults(Faults{FailStatus: http.StatusServiceUnavailable})
	wantError(t, postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1)),
		http.StatusServiceUnavailable, "Injected fault (HTTP 503)")
	if a := get(t, up["secure_url"].(string), false); a.status != http.StatusOK {
		t.Errorf("delivery is not an API request, yet failed: %d", a.status)
	}

	env.e.SetFaults(Faults{CloseConn: true})
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/cloudinary/v1_1/demo/resources/image/upload/f", nil)
	req.SetBasicAuth(testKey, testSecret)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("CloseConn: got HTTP %d, want a connection error", resp.StatusCode)
	}

	env.e.SetFaults(Faults{Delay: 50 * time.Millisecond})
	start := time.Now()
	if a := get(t, env.srv.URL+"/cloudinary/v1_1/demo/resources/image/upload/f", true); a.status != http.StatusOK {
		t.Errorf("delayed lookup: %d", a.status)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Errorf("Delay not applied")
	}

	env.e.SetFaults(Faults{FailRate: 1})
	if a := get(t, env.srv.URL+"/cloudinary/v1_1/demo/resources/image/upload/f", true); a.status != http.StatusInternalServerError {
		t.Errorf("FailRate alone: %d, want 500", a.status)
	}

	env.e.SetFaults(Faults{})
	if a := get(t, env.srv.URL+"/cloudinary/v1_1/demo/resources/image/upload/f", true); a.status != http.StatusOK {
		t.Errorf("after clearing faults: %d", a.status)
	}
}

func TestNoCloudinaryAccount(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	if a := postMultipart(t, srv.URL+"/cloudinary/v1_1/demo/image/upload", map[string]string{"x": "1"}, "", nil); a.status != http.StatusNotFound {
		t.Errorf("status %d, want 404", a.status)
	}
}

func TestParseContext(t *testing.T) {
	got := parseContext(`alt=A cat \| sleeping|caption=x\=y|flag|order=3`)
	want := map[string]string{"alt": "A cat | sleeping", "caption": "x=y", "flag": "", "order": "3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseContext = %v, want %v", got, want)
	}
}

// The server-side string builder agrees with the spec vectors whenever no
// value is empty (U11 has an empty folder, which SDKs drop and servers keep).
func TestServerStringToSignVectors(t *testing.T) {
	cases := []struct {
		params  map[string]string
		version int
		want    string
	}{
		{map[string]string{"timestamp": "1700000000", "notification_url": "https://example.com/hook?a=1&b=2", "public_id": "q=1&x"}, 2,
			"notification_url=https://example.com/hook?a=1%26b=2&public_id=q=1%26x&timestamp=1700000000"},
		{map[string]string{"timestamp": "1700000000", "notification_url": "https://example.com/hook?a=1&b=2", "public_id": "q=1&x"}, 1,
			"notification_url=https://example.com/hook?a=1&b=2&public_id=q=1&x&timestamp=1700000000"},
		{map[string]string{"invalidate": "1", "public_id": "pets/rex", "timestamp": "1700000000", "type": "upload"}, 2,
			"invalidate=1&public_id=pets/rex&timestamp=1700000000&type=upload"},
	}
	for _, tc := range cases {
		if got := serverStringToSign(tc.params, tc.version); got != tc.want || got != signer.CloudinaryStringToSign(tc.params, tc.version) {
			t.Errorf("serverStringToSign = %q, want %q", got, tc.want)
		}
	}
}

// Browsers on another origin upload straight to the emulator, as they
// would to api.cloudinary.com.
func TestCORS(t *testing.T) {
	env := newEnv(t, nil)
	req, _ := http.NewRequest(http.MethodOptions, env.api("auto", "upload"), nil)
	req.Header.Set("Origin", "http://localhost:5173")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "x-requested-with")
	a := do(t, req)
	if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(a.header.Get("Access-Control-Allow-Methods"), "POST") ||
		a.header.Get("Access-Control-Allow-Headers") != "x-requested-with" {
		t.Errorf("preflight: %d %v", a.status, a.header)
	}
	params := map[string]string{"timestamp": "1700000000", "public_id": "cors"}
	up := postMultipart(t, env.api("image", "upload"), sign(params, signer.SHA1, 2), "x.png", pngBytes(t, 1, 1))
	if up.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("upload answer lacks Access-Control-Allow-Origin")
	}
}
