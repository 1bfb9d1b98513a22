package uploadcare

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokerdev/broker/signer"
)

const (
	testPub    = "demopublickey"
	testSecret = "demosecretkey"
	testUUID   = "17be4678-dab7-4bc7-8753-28914a22960a"
	// apiPrefix is where the fake REST API is mounted, as the emulator is
	// in `broker dev`: the signed URI must include it.
	apiPrefix = "/emulator/uploadcare/api"
)

// testNow is the client's clock in REST tests, so the Date header is known.
var testNow = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// newTestClient starts a server standing in for Uploadcare and returns a
// client whose REST and Upload bases point at it. The server is closed when
// the test ends.
func newTestClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &Client{
		PublicKey: testPub,
		SecretKey: testSecret,
		UploadURL: srv.URL + "/",             // the trailing slash must be tolerated
		APIURL:    srv.URL + apiPrefix + "/", // so must a path
		Now:       func() time.Time { return testNow },
	}
}

// restAuthorized checks a REST request the way Uploadcare does (§4.2),
// against the raw request line, and answers in Uploadcare's error shapes.
func restAuthorized(t *testing.T, w http.ResponseWriter, r *http.Request) bool {
	t.Helper()
	if got := r.Header.Get("Accept"); got != "application/vnd.uploadcare-v0.7+json" {
		writeJSON(w, http.StatusNotAcceptable, `{"detail":"Incorrect Accept header provided."}`)
		t.Errorf("Accept = %q", got)
		return false
	}
	date := r.Header.Get("Date")
	if when, err := http.ParseTime(date); err != nil || !when.Equal(testNow) || !strings.HasSuffix(date, " GMT") {
		t.Errorf("Date = %q (%v), want %s in RFC 1123 GMT", date, err, testNow)
	}
	body, _ := io.ReadAll(r.Body)
	want := "Uploadcare " + testPub + ":" + signer.SignUploadcareREST(testSecret, r.Method, body, r.Header.Get("Content-Type"), date, r.RequestURI)
	if r.Header.Get("Authorization") != want || r.Header.Get("Content-Type") != "application/json" {
		writeJSON(w, http.StatusUnauthorized, `{"detail":"Invalid signature. Please check your Secret key."}`)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/vnd.uploadcare-v0.7+json")
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

// checkNoSecret guards the rule that the secret key never reaches an error.
func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testSecret) {
		t.Errorf("error text contains the secret key: %v", err)
	}
}

// fileJSON is a v0.7 file object as the REST API answers it, with fields the
// client does not know (variations, appdata, tags) that it must ignore.
const fileJSON = `{
  "datetime_removed": null,
  "datetime_stored": "2024-01-01T00:00:01.477888Z",
  "datetime_uploaded": "2024-01-01T00:00:00.000000Z",
  "is_image": true, "is_ready": true,
  "mime_type": "image/png",
  "original_file_url": "https://1s4oyld5dc.ucarecd.net/17be4678-dab7-4bc7-8753-28914a22960a/cat.png",
  "original_filename": "cat.png",
  "size": 12345,
  "url": "https://api.uploadcare.com/files/17be4678-dab7-4bc7-8753-28914a22960a/",
  "uuid": "17be4678-dab7-4bc7-8753-28914a22960a",
  "variations": null,
  "content_info": {"mime": {"mime": "image/png", "type": "image", "subtype": "png"},
                   "image": {"color_mode": "RGBA", "orientation": null, "format": "PNG", "height": 480, "width": 640,
                             "sequence": false, "geo_location": null, "datetime_original": null, "dpi": [72, 72]}},
  "metadata": {"broker_intent": "tok.123", "subsystem": "uploader"},
  "appdata": null, "tags": []
}`

// restServer answers the three REST calls the client makes on testUUID,
// after checking their signatures, and counts the calls.
func restServer(t *testing.T, calls *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if !restAuthorized(t, w, r) {
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "GET " + apiPrefix + "/files/" + testUUID + "/":
			writeJSON(w, http.StatusOK, fileJSON)
		case "PUT " + apiPrefix + "/files/" + testUUID + "/storage/":
			writeJSON(w, http.StatusOK, fileJSON)
		case "DELETE " + apiPrefix + "/files/" + testUUID + "/storage/":
			writeJSON(w, http.StatusOK, strings.Replace(strings.Replace(fileJSON,
				`"datetime_removed": null`, `"datetime_removed": "2024-01-02T00:00:00Z"`, 1),
				`"original_file_url": "https://1s4oyld5dc.ucarecd.net/17be4678-dab7-4bc7-8753-28914a22960a/cat.png"`, `"original_file_url": null`, 1))
		default:
			writeJSON(w, http.StatusNotFound, `{"detail":"Not found."}`)
		}
	}
}

func TestFileFound(t *testing.T) {
	var calls atomic.Int32
	c := newTestClient(t, restServer(t, &calls))
	info, err := c.File(context.Background(), testUUID)
	if err != nil {
		t.Fatal(err)
	}
	stored := time.Date(2024, 1, 1, 0, 0, 1, 477888000, time.UTC)
	switch {
	case info.UUID != testUUID, info.Size != 12345, info.MimeType != "image/png", info.OriginalFilename != "cat.png",
		!info.IsImage, !info.IsReady:
		t.Errorf("scalar fields wrong: %+v", info)
	case !info.DatetimeUploaded.Equal(testNow):
		t.Errorf("DatetimeUploaded = %v", info.DatetimeUploaded)
	case info.DatetimeStored == nil || !info.DatetimeStored.Equal(stored):
		t.Errorf("DatetimeStored = %v", info.DatetimeStored)
	case info.DatetimeRemoved != nil:
		t.Errorf("DatetimeRemoved = %v, want nil", info.DatetimeRemoved)
	case info.OriginalFileURL == nil || *info.OriginalFileURL != c.CDNURLFor(testUUID)+"cat.png":
		t.Errorf("OriginalFileURL = %v", info.OriginalFileURL)
	case info.Metadata["broker_intent"] != "tok.123":
		t.Errorf("Metadata = %v", info.Metadata)
	case info.ContentInfo.Image == nil || *info.ContentInfo.Image != (ImageInfo{Width: 640, Height: 480, Format: "PNG"}):
		t.Errorf("ContentInfo.Image = %+v", info.ContentInfo.Image)
	case info.ContentInfo.Mime == nil || info.ContentInfo.Mime.Subtype != "png":
		t.Errorf("ContentInfo.Mime = %+v", info.ContentInfo.Mime)
	}
	if calls.Load() != 1 {
		t.Errorf("%d requests, want 1", calls.Load())
	}
}

func TestStoreAndDelete(t *testing.T) {
	var calls atomic.Int32
	c := newTestClient(t, restServer(t, &calls))
	info, err := c.Store(context.Background(), testUUID)
	if err != nil {
		t.Fatal(err)
	}
	if info.UUID != testUUID || info.DatetimeStored == nil {
		t.Errorf("Store answered %+v", info)
	}
	if err := c.Delete(context.Background(), testUUID); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d requests, want 2", calls.Load())
	}
}

// Failures of each REST call sort into ErrNotFound and ErrUnavailable, and
// never reveal the secret key, even when the answer echoes it.
func TestRESTFailures(t *testing.T) {
	calls := map[string]func(*Client) error{
		"File":   func(c *Client) error { _, err := c.File(context.Background(), testUUID); return err },
		"Store":  func(c *Client) error { _, err := c.Store(context.Background(), testUUID); return err },
		"Delete": func(c *Client) error { return c.Delete(context.Background(), testUUID) },
	}
	answers := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"404", http.StatusNotFound, `{"detail":"Not found."}`, ErrNotFound},
		{"500", http.StatusInternalServerError, `<html>oops</html>`, ErrUnavailable},
		{"401 echoing the secret", http.StatusUnauthorized, `{"detail":"Secret key ` + testSecret + ` is wrong."}`, ErrUnavailable},
		{"429", http.StatusTooManyRequests, `{"detail":"Request was throttled."}`, ErrUnavailable},
		{"406", http.StatusNotAcceptable, `{"detail":"Incorrect Accept header provided."}`, ErrUnavailable},
	}
	for name, call := range calls {
		for _, a := range answers {
			t.Run(name+"/"+a.name, func(t *testing.T) {
				c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, a.status, a.body)
				}))
				err := call(c)
				if !errors.Is(err, a.want) {
					t.Fatalf("err = %v, want %v", err, a.want)
				}
				if a.want == ErrNotFound && errors.Is(err, ErrUnavailable) {
					t.Errorf("404 also reads as unavailable: %v", err)
				}
				checkNoSecret(t, err)
			})
		}
	}
}

func TestFileGarbageAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":          `<html>Bad gateway</html>`,
		"truncated":         `{"uuid": "17be4678-dab7-4bc7-8753-28914a22960a", "size": 1`,
		"wrong types":       `{"uuid": 42}`,
		"bad timestamp":     `{"uuid": "17be4678-dab7-4bc7-8753-28914a22960a", "datetime_uploaded": "yesterday"}`,
		"another file":      `{"uuid": "00000000-0000-4000-8000-000000000000"}`,
		"larger than 1 MiB": `{"uuid": "` + strings.Repeat("x", maxAnswerBytes) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, http.StatusOK, body)
			}))
			info, err := c.File(context.Background(), testUUID)
			if !errors.Is(err, ErrUnavailable) || info != nil {
				t.Fatalf("info %+v, err %v; want ErrUnavailable", info, err)
			}
		})
	}
}

// A 200 that is not Uploadcare's file object does not prove the delete:
// the caller must keep its record (and retry) rather than drop it.
func TestDeleteNeedsTheFileObject(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `<html>garbage</html>`)
	}))
	if err := c.Delete(context.Background(), testUUID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// Missing fields, nulls and odd spellings of times must not fail a lookup.
func TestFileInfoTolerant(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"datetime_uploaded": "2024-01-01T00:00:00.123", "datetime_stored": null,
			"original_file_url": null, "content_info": null, "metadata": null, "size": null, "new_field": {"x": [1]}}`)
	}))
	info, err := c.File(context.Background(), testUUID)
	if err != nil {
		t.Fatal(err)
	}
	if info.UUID != testUUID || info.Size != 0 || info.DatetimeStored != nil || info.OriginalFileURL != nil ||
		info.ContentInfo.Image != nil || info.Metadata != nil {
		t.Errorf("got %+v", info)
	}
	if want := testNow.Add(123 * time.Millisecond); !info.DatetimeUploaded.Equal(want) {
		t.Errorf("DatetimeUploaded = %v, want %v (zone-less means UTC)", info.DatetimeUploaded, want)
	}
}

func TestRESTTimeout(t *testing.T) {
	release := make(chan struct{})
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(func() { close(release) }) // runs before the server closes

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.File(ctx, testUUID)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	c.HTTP = &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := c.File(context.Background(), testUUID); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with an http.Client timeout: err = %v, want ErrUnavailable", err)
	}
}

func TestRESTUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c := &Client{PublicKey: testPub, SecretKey: testSecret, APIURL: srv.URL}
	_, err := c.File(context.Background(), testUUID)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	checkNoSecret(t, err)
}

// Anything but a UUID is refused before a request could carry it into a
// path; a client without keys never calls out.
func TestRESTRefusedLocally(t *testing.T) {
	for _, id := range []string{"", "../webhooks", testUUID + "/../../webhooks", testUUID[:35], testUUID + "0",
		"17be4678_dab7_4bc7_8753_28914a22960a", "17be4678-dab7-4bc7-8753-28914a22960g", testUUID + "?x=1", "%2e%2e"} {
		c := newTestClient(t, mustNotCall(t))
		if _, err := c.File(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("File(%q): err = %v, want ErrNotFound", id, err)
		}
		if _, err := c.Store(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Store(%q): err = %v, want ErrNotFound", id, err)
		}
		if err := c.Delete(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q): err = %v, want ErrNotFound", id, err)
		}
	}
	c := newTestClient(t, mustNotCall(t))
	c.SecretKey = ""
	if _, err := c.File(context.Background(), testUUID); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no secret: err = %v, want ErrUnavailable", err)
	}
	if _, err := c.UploadBase(context.Background(), strings.NewReader("x"), "a", "", "", nil, 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no secret: upload err = %v, want ErrUnavailable", err)
	}
}

func TestValidUUID(t *testing.T) {
	for s, want := range map[string]bool{
		testUUID:                               true,
		strings.ToUpper(testUUID):              true,
		"00000000-0000-0000-0000-000000000000": true,
		"17be4678dab74bc7875328914a22960a":     false,
		"17be4678-dab7-4bc7-8753-28914a22960":  false,
		" 17be4678-dab7-4bc7-8753-28914a2296a": false,
		"17be4678-dab7-4bc7-8753+28914a22960a": false,
	} {
		if ValidUUID(s) != want {
			t.Errorf("ValidUUID(%q) = %v", s, !want)
		}
	}
}

func TestCDNURLFor(t *testing.T) {
	c := &Client{PublicKey: testPub}
	if got, want := c.CDNURLFor(testUUID), "https://1s4oyld5dc.ucarecd.net/"+testUUID+"/"; got != want {
		t.Errorf("default CDN: %s, want %s", got, want)
	}
	c.CDNURL = "http://127.0.0.1:3000/emulator/uploadcare/cdn/"
	if got, want := c.CDNURLFor(testUUID), "http://127.0.0.1:3000/emulator/uploadcare/cdn/"+testUUID+"/"; got != want {
		t.Errorf("configured CDN: %s, want %s", got, want)
	}
}

// ---- Upload API ----

// received is what the fake Upload API saw of one /base/ request.
type received struct {
	fields      map[string]string
	order       []string
	filename    string
	contentType string
	size        int64
	sha256      string
	chunked     bool
}

// uploadServer stands in for POST /base/?jsonerrors=1 with signed uploads
// on. It reads the form as a stream, as a real server must for 100 MB
// files, checks the project key and signature (§1.4) before the file, hashes
// the file, and answers {"file": uuid} or the jsonerrors envelope.
func uploadServer(t *testing.T, got *received) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/base/" || r.URL.RawQuery != "jsonerrors=1" {
			t.Errorf("request %s %s", r.Method, r.URL)
		}
		got.chunked = len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
		mr, err := r.MultipartReader()
		if err != nil {
			envelope(w, http.StatusBadRequest, "BaseViewsError", "Request processing failed.")
			return
		}
		got.fields = map[string]string{}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				envelope(w, http.StatusBadRequest, "BaseViewsError", "Request processing failed.")
				return
			}
			got.order = append(got.order, part.FormName())
			if part.FormName() != uploadFileField {
				v, _ := io.ReadAll(part)
				got.fields[part.FormName()] = string(v)
				continue
			}
			// Every field the signature depends on came first.
			if got.fields["UPLOADCARE_PUB_KEY"] != testPub {
				envelope(w, http.StatusForbidden, "ProjectPublicKeyInvalidError", "UPLOADCARE_PUB_KEY is invalid.")
				return
			}
			expire := got.fields["expire"]
			exp, err := strconv.ParseInt(expire, 10, 64)
			switch {
			case err != nil:
				envelope(w, http.StatusBadRequest, "SignatureExpirationInvalidError", "`expire` must be a UNIX timestamp.")
				return
			case exp < time.Now().Unix():
				envelope(w, http.StatusForbidden, "SignatureExpirationError", "Expired signature.")
				return
			case !signer.VerifyUploadcareUpload(testSecret, expire, got.fields["signature"]):
				envelope(w, http.StatusForbidden, "SignatureInvalidError", "Invalid signature.")
				return
			}
			got.filename = part.FileName()
			got.contentType = part.Header.Get("Content-Type")
			h := sha256.New()
			if got.size, err = io.Copy(h, part); err != nil {
				envelope(w, http.StatusBadRequest, "BaseViewsError", "Request processing failed.")
				return
			}
			got.sha256 = hex.EncodeToString(h.Sum(nil))
		}
		writeJSON(w, http.StatusOK, `{"file":"`+testUUID+`"}`)
	}
}

// envelope answers as the Upload API does with ?jsonerrors=1: HTTP 200
// and the error inside (§1.4).
func envelope(w http.ResponseWriter, status int, code, content string) {
	writeJSON(w, http.StatusOK, fmt.Sprintf(`{"error":{"content":%q,"status_code":%d,"error_code":%q}}`, content, status, code))
}

// pattern is an endless, deterministic, non-repeating-per-block byte
// stream, so a reordered or dropped chunk changes the hash.
type pattern struct{ n uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n*7 + p.n>>11)
		p.n++
	}
	return len(b), nil
}

func patternHash(size int64) string {
	h := sha256.New()
	io.Copy(h, io.LimitReader(&pattern{}, size))
	return hex.EncodeToString(h.Sum(nil))
}

// uploadClient is a client with the real clock: the fake Upload API checks
// expiry against time.Now.
func uploadClient(t *testing.T, h http.Handler) *Client {
	c := newTestClient(t, h)
	c.Now = nil
	return c
}

func TestUploadBaseSmall(t *testing.T) {
	var got received
	c := uploadClient(t, uploadServer(t, &got))
	meta := map[string]string{"subsystem": "uploader", "broker_intent": "v1.abc-DEF_123:x"}
	before := time.Now()
	uuid, err := c.UploadBase(context.Background(), strings.NewReader("hello world"), `cat "photo" é.txt`, "text/plain", "0", meta, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if uuid != testUUID {
		t.Errorf("uuid = %q", uuid)
	}
	wantOrder := []string{"UPLOADCARE_PUB_KEY", "UPLOADCARE_STORE", "signature", "expire", "metadata[broker_intent]", "metadata[subsystem]", "file"}
	if strings.Join(got.order, ",") != strings.Join(wantOrder, ",") {
		t.Errorf("parts in order %v, want %v", got.order, wantOrder)
	}
	if got.fields["UPLOADCARE_STORE"] != "0" || got.fields["metadata[broker_intent]"] != meta["broker_intent"] {
		t.Errorf("fields %v", got.fields)
	}
	exp, _ := strconv.ParseInt(got.fields["expire"], 10, 64)
	if lo, hi := before.Add(10*time.Minute).Unix(), time.Now().Add(10*time.Minute).Unix(); exp < lo || exp > hi {
		t.Errorf("expire %d not within [%d, %d]", exp, lo, hi)
	}
	if got.filename != `cat "photo" é.txt` || got.contentType != "text/plain" || got.size != 11 || got.sha256 != sha256Hex("hello world") {
		t.Errorf("file part: %+v", got)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Without a name, type, store or ttl the official clients' defaults apply,
// and an empty store is left out so the project's default applies.
func TestUploadBaseDefaults(t *testing.T) {
	var got received
	c := uploadClient(t, uploadServer(t, &got))
	before := time.Now()
	if _, err := c.UploadBase(context.Background(), strings.NewReader(""), "", "", "", nil, 0); err != nil {
		t.Fatal(err)
	}
	if got.filename != "original" || got.contentType != "application/octet-stream" || got.size != 0 {
		t.Errorf("file part: %+v", got)
	}
	if _, sent := got.fields["UPLOADCARE_STORE"]; sent {
		t.Errorf("an empty store was sent: %v", got.fields)
	}
	exp, _ := strconv.ParseInt(got.fields["expire"], 10, 64)
	if lo := before.Add(DefaultUploadTTL).Unix(); exp < lo || exp > lo+5 {
		t.Errorf("expire %d, want about now + %v (%d)", exp, DefaultUploadTTL, lo)
	}
}

// A 50 MB file reaches the server intact while the client's allocations
// stay a small fraction of it: the body is streamed, never held whole.
func TestUploadBaseStreams50MB(t *testing.T) {
	const size = 50 << 20
	var got received
	c := uploadClient(t, uploadServer(t, &got))
	want := patternHash(size)

	// The fake server runs in this process, so its allocations count too;
	// the bound still proves that nobody buffered the 50 MB.
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	uuid, err := c.UploadBase(context.Background(), io.LimitReader(&pattern{}, size), "big.bin", "application/octet-stream", "1", nil, time.Hour)

	runtime.ReadMemStats(&after)
	close(stop)
	sampler.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if uuid != testUUID || got.size != size || got.sha256 != want {
		t.Fatalf("server got %d bytes with SHA-256 %s, want %d / %s", got.size, got.sha256, size, want)
	}
	if !got.chunked {
		t.Error("the body was not sent chunked: was its length known in advance?")
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	grown := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("allocated %d KiB in total, heap in use grew by at most %d KiB, for a %d MiB file", allocated>>10, grown>>10, size>>20)
	const limit = 16 << 20
	if allocated > limit {
		t.Errorf("allocated %d bytes for a %d-byte upload (limit %d)", allocated, size, limit)
	}
	if grown > limit {
		t.Errorf("heap in use grew by %d bytes (limit %d)", grown, limit)
	}
}

// Signature errors arrive as the jsonerrors envelope with HTTP 200 and must
// come back as *UploadError, not as success or as an unavailable provider.
func TestUploadBaseSignatureErrors(t *testing.T) {
	tests := []struct {
		name   string
		tune   func(*Client)
		status int
		code   string
		msg    string
	}{
		{"expired: clock an hour behind", func(c *Client) { c.Now = func() time.Time { return time.Now().Add(-time.Hour) } },
			http.StatusForbidden, "SignatureExpirationError", "Expired signature."},
		{"wrong secret", func(c *Client) { c.SecretKey = "not-the-secret" },
			http.StatusForbidden, "SignatureInvalidError", "Invalid signature."},
		{"wrong public key", func(c *Client) { c.PublicKey = "someoneelse" },
			http.StatusForbidden, "ProjectPublicKeyInvalidError", "UPLOADCARE_PUB_KEY is invalid."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got received
			c := uploadClient(t, uploadServer(t, &got))
			tt.tune(c)
			uuid, err := c.UploadBase(context.Background(), strings.NewReader("hello"), "a.txt", "text/plain", "auto", nil, time.Minute)
			var ue *UploadError
			if !errors.As(err, &ue) || uuid != "" {
				t.Fatalf("uuid %q, err %v; want *UploadError", uuid, err)
			}
			if ue.Status != tt.status || ue.Code != tt.code || ue.Message != tt.msg {
				t.Errorf("got %+v", ue)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("a refusal reads as unavailable: %v", err)
			}
			if !strings.Contains(err.Error(), tt.code) {
				t.Errorf("error text %q lacks the code", err)
			}
			checkNoSecret(t, err)
		})
	}
}

// Every shape of failure /base/ can answer with, with or without jsonerrors.
func TestUploadBaseAnswers(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		unavailable bool
		upload      *UploadError // nil: no *UploadError expected
	}{
		{"envelope with the real status", http.StatusForbidden,
			`{"error":{"content":"Invalid signature.","status_code":403,"error_code":"SignatureInvalidError"}}`,
			false, &UploadError{403, "SignatureInvalidError", "Invalid signature."}},
		{"envelope without status_code", http.StatusOK,
			`{"error":{"content":"Request does not contain files.","error_code":"FilesRequiredError"}}`,
			false, &UploadError{400, "FilesRequiredError", "Request does not contain files."}},
		{"plain-text 413", http.StatusRequestEntityTooLarge, "Request entity too large.\n",
			false, &UploadError{413, "", "Request entity too large."}},
		{"throttled", http.StatusOK,
			`{"error":{"content":"Request was throttled.","status_code":429,"error_code":"RequestThrottledError"}}`,
			true, &UploadError{429, "RequestThrottledError", "Request was throttled."}},
		{"500 page", http.StatusInternalServerError, "<html>Internal Server Error</html>",
			true, &UploadError{500, "", "<html>Internal Server Error</html>"}},
		{"503 envelope", http.StatusOK,
			`{"error":{"content":"Service unavailable.","status_code":503,"error_code":"BaseViewsError"}}`,
			true, &UploadError{503, "BaseViewsError", "Service unavailable."}},
		{"envelope echoing the secret", http.StatusOK,
			`{"error":{"content":"Bad key ` + testSecret + `","status_code":403,"error_code":"SignatureInvalidError"}}`,
			false, &UploadError{403, "SignatureInvalidError", "Bad key [redacted]"}},
		{"garbage 200", http.StatusOK, "<html>hello</html>", true, nil},
		{"no file key", http.StatusOK, `{"file.txt":"` + testUUID + `"}`, true, nil},
		{"not a UUID", http.StatusOK, `{"file":"../../x"}`, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := uploadClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			uuid, err := c.UploadBase(context.Background(), strings.NewReader("hello"), "a.txt", "", "", nil, time.Minute)
			if err == nil || uuid != "" {
				t.Fatalf("uuid %q, err %v; want an error", uuid, err)
			}
			if errors.Is(err, ErrUnavailable) != tt.unavailable {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v: %v", !tt.unavailable, tt.unavailable, err)
			}
			var ue *UploadError
			if found := errors.As(err, &ue); found != (tt.upload != nil) {
				t.Fatalf("errors.As(*UploadError) = %v: %v", found, err)
			}
			if tt.upload != nil && *ue != *tt.upload {
				t.Errorf("got %+v, want %+v", ue, tt.upload)
			}
			checkNoSecret(t, err)
		})
	}
}

// failingReader gives good bytes, then an error, as an incoming request body
// does when the broker's client disconnects or passes a size limit.
type failingReader struct {
	good int
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.good == 0 {
		return 0, f.err
	}
	n := min(len(p), f.good)
	for i := range p[:n] {
		p[i] = 'x'
	}
	f.good -= n
	return n, nil
}

var errClientGone = errors.New("client closed the connection")

func TestUploadBaseReaderFails(t *testing.T) {
	var got received
	c := uploadClient(t, uploadServer(t, &got))

	uuid, err := c.UploadBase(context.Background(), &failingReader{good: 1 << 20, err: errClientGone}, "a.bin", "", "", nil, time.Minute)
	if !errors.Is(err, errClientGone) || uuid != "" {
		t.Fatalf("uuid %q, err %v; want errClientGone", uuid, err)
	}
	if errors.Is(err, ErrUnavailable) {
		t.Errorf("the reader's failure reads as Uploadcare's: %v", err)
	}

	// The broker's size limit, as the HTTP handler will apply it.
	limited := http.MaxBytesReader(nil, io.NopCloser(io.LimitReader(&pattern{}, 3<<20)), 2<<20)
	_, err = c.UploadBase(context.Background(), limited, "a.bin", "", "", nil, time.Minute)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) || tooBig.Limit != 2<<20 {
		t.Fatalf("err = %v, want *http.MaxBytesError", err)
	}
}

// An Upload API that refuses before reading the body must not leave the
// client hanging on a writer nobody reads.
func TestUploadBaseEarlyAnswer(t *testing.T) {
	c := uploadClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, "Request entity too large.")
	}))
	done := make(chan error, 1)
	go func() {
		_, err := c.UploadBase(context.Background(), io.LimitReader(&pattern{}, 200<<20), "big.bin", "", "", nil, time.Minute)
		done <- err
	}()
	select {
	case err := <-done:
		var ue *UploadError
		// Depending on timing the transport reports the early answer or
		// the broken connection; both are fine, a hang is not.
		if !errors.As(err, &ue) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want *UploadError or ErrUnavailable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("UploadBase hung after an early answer")
	}
}

// blockingReader never yields data until released: a client that stalls.
type blockingReader struct{ release chan struct{} }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

// The caller's deadline ends an upload whose source stalls, without waiting
// for the stalled read.
func TestUploadBaseContextEndsStalledUpload(t *testing.T) {
	c := uploadClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	src := blockingReader{release: make(chan struct{})}
	t.Cleanup(func() { close(src.release) })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.UploadBase(ctx, src, "a.bin", "", "", nil, time.Minute)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// Bad metadata and store values are refused before the file is sent.
func TestUploadBaseRefusedLocally(t *testing.T) {
	many := map[string]string{}
	for i := range 51 {
		many["k"+strconv.Itoa(i)] = "v"
	}
	tests := []struct {
		name     string
		metadata map[string]string
		code     string
	}{
		{"empty key", map[string]string{"": "v"}, "FileMetadataKeyEmptyError"},
		{"forbidden key", map[string]string{"a b": "v"}, "FileMetadataKeyForbiddenError"},
		{"bracket in key", map[string]string{"a]": "v"}, "FileMetadataKeyForbiddenError"},
		{"long key", map[string]string{strings.Repeat("k", 65): "v"}, "FileMetadataKeyLengthTooBigError"},
		{"empty value", map[string]string{"k": ""}, "FileMetadataValueEmptyError"},
		{"long value", map[string]string{"k": strings.Repeat("é", 513)}, "FileMetadataValueLengthTooBigError"},
		{"51 keys", many, "FileMetadataKeysNumberTooBigError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := uploadClient(t, mustNotCall(t))
			_, err := c.UploadBase(context.Background(), strings.NewReader("x"), "a", "", "", tt.metadata, 0)
			var ue *UploadError
			if !errors.As(err, &ue) || ue.Code != tt.code || ue.Status != http.StatusBadRequest {
				t.Fatalf("err = %v, want *UploadError %s", err, tt.code)
			}
		})
	}
	c := uploadClient(t, mustNotCall(t))
	if _, err := c.UploadBase(context.Background(), strings.NewReader("x"), "a", "", "true", nil, 0); err == nil {
		t.Error(`store "true" was accepted`)
	}
	ok := map[string]string{strings.Repeat("k", 64): strings.Repeat("é", 512), "a.b:c-d_E9": "v"}
	if problem := checkMetadata(ok); problem != nil {
		t.Errorf("limits are inclusive, yet %v", problem)
	}
}

// The multipart Content-Type names the boundary the body uses.
func TestUploadBaseContentType(t *testing.T) {
	var seen string
	c := uploadClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get("Content-Type")
		io.Copy(io.Discard, r.Body)
		writeJSON(w, http.StatusOK, `{"file":"`+testUUID+`"}`)
	}))
	if _, err := c.UploadBase(context.Background(), strings.NewReader("x"), "a", "", "", nil, 0); err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(seen)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		t.Errorf("Content-Type %q", seen)
	}
}
