package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/metadata"
)

// chunked hides a reader's length, so the client sends the body chunked
// and only reading it tells how long it is.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestJSONBodyLimit(t *testing.T) {
	const limit = 1024
	o := newOpsServer(t, func(d *httpapi.Deps) {
		d.JSONBodyLimit = limit
		// A handler with no limit of its own, as a webhook might be.
		d.Mount = func(e *echo.Echo) {
			e.POST("/raw", func(c echo.Context) error {
				b, err := io.ReadAll(c.Request().Body)
				if err != nil {
					return fmt.Errorf("read the body: %w", err)
				}
				return c.JSON(200, map[string]any{"success": true, "bytes": len(b)})
			})
		}
	})
	big := `{"public_id":"uploads/alice/x","pad":"` + strings.Repeat("x", 2*limit) + `"}`
	json := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		name string
		path string
		body io.Reader
	}{
		{"declared length", "/save-metadata", strings.NewReader(big)},
		{"chunked", "/save-metadata", chunked{strings.NewReader(big)}},
		{"declared length, handler without a limit", "/raw", strings.NewReader(big)},
		{"chunked, handler without a limit", "/raw", chunked{strings.NewReader(big)}},
	} {
		r := o.request("POST", tc.path, "alice", tc.body, json)
		if r.Status != 413 || r.code() != "payload_too_large" {
			t.Errorf("%s: %d %s, want 413 payload_too_large", tc.name, r.Status, r.Raw)
		}
	}
	// Exactly at the limit is fine.
	exact := `{"pad":"` + strings.Repeat("x", limit-10) + `"}`
	if len(exact) != limit {
		t.Fatalf("test body is %d bytes", len(exact))
	}
	if r := o.request("POST", "/raw", "", chunked{strings.NewReader(exact)}, json); r.Status != 200 || r.Body["bytes"] != float64(limit) {
		t.Errorf("a body of exactly the limit: %d %s", r.Status, r.Raw)
	}
	if r := o.save("alice", badEvidence); r.Status != 422 {
		t.Errorf("a small save: %d %s, want 422 (judged on its merits)", r.Status, r.Raw)
	}
}

// trickle returns a body that yields data in n pieces, gap apart.
func trickle(data []byte, n int, gap time.Duration) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		size := (len(data) + n - 1) / n
		for len(data) > 0 {
			k := min(size, len(data))
			if _, err := pw.Write(data[:k]); err != nil {
				return
			}
			data = data[k:]
			if len(data) > 0 {
				time.Sleep(gap)
			}
		}
		pw.Close()
	}()
	return pr
}

// post sends a body and reports the status, or the transport error when
// the server cut the connection.
func post(t *testing.T, url, contentType, user string, body io.Reader) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest("POST", url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), nil
}

// uploadcareOnEmulator wires Uploadcare to an emulator of its own.
func uploadcareOnEmulator(t *testing.T) *metadata.Uploadcare {
	t.Helper()
	_, emuURL := serveEmulator(t, emulator.Options{
		Uploadcare: &emulator.UploadcareProject{PublicKey: ucPub, SecretKey: ucSecret, SignedUploads: true},
	})
	client := uploadcareClient(emuURL, ucSecret, nil)
	return metadata.NewUploadcare(metadata.UploadcareSettings{
		PublicKey: ucPub, SecretKey: ucSecret, UploadURL: client.UploadURL, TTL: 30 * time.Minute,
	}, client)
}

func uploadForm(t *testing.T, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", "slow.bin")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// The read and write timeouts are short here, so the requests below take
// several times longer than either: a JSON request that slow is cut off,
// an upload that keeps sending is not, and an upload that stops sending
// is cut off after the idle window. The margins are wide (a 2.7 s body
// against a 0.3 s deadline, 0.15 s gaps against a 2.4 s idle window, a
// 4.8 s stall) so that a loaded machine cannot turn one case into another.
func TestTimeoutsSpareStreamingUploads(t *testing.T) {
	const short = 300 * time.Millisecond
	o := newOpsServer(t, func(d *httpapi.Deps) {
		d.Service.Uploadcare = uploadcareOnEmulator(t)
		d.ReadTimeout, d.WriteTimeout = short, short
		d.StreamIdleTimeout = 8 * short
		d.JSONBodyLimit = 1024 // the file below is larger: uploads are not JSON
	})
	data := bytes.Repeat([]byte("0123456789abcdef"), 512) // 8 KiB
	form, ct := uploadForm(t, data)

	t.Run("slow JSON is cut off", func(t *testing.T) {
		t.Parallel()
		// Arrived whole it would be refused as bad evidence (422); cut
		// off it is a 400, or no answer at all.
		status, raw, err := post(t, o.URL+"/save-metadata", "application/json", "alice", trickle([]byte(badEvidence), 10, short))
		if err == nil && (status != 400 || !strings.Contains(raw, "invalid_request")) {
			t.Errorf("a JSON body slower than the read timeout: %d %s, want it cut off", status, raw)
		}
	})
	t.Run("slow upload that keeps sending succeeds", func(t *testing.T) {
		t.Parallel()
		status, raw, err := post(t, o.URL+"/upload", ct, "alice", trickle(form, 12, short/2))
		if err != nil || status != 201 {
			t.Errorf("an upload that keeps sending, slower than the read and write timeouts: %d %s %v, want 201", status, raw, err)
		}
	})
	t.Run("stalled upload is cut off", func(t *testing.T) {
		t.Parallel()
		// Quiet for two idle windows halfway through: without the idle
		// deadline it would end well (201).
		status, raw, err := post(t, o.URL+"/upload", ct, "alice", trickle(form, 2, 16*short))
		if err == nil && (status == 201 || status >= 500) {
			t.Errorf("an upload stalled past the idle window: %d %s, want it cut off as the client's fault", status, raw)
		}
	})
}
