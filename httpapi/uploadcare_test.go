package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
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
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/signer"
)

const (
	ucPub    = "httpapipublickey"
	ucSecret = "httpapi-uploadcare-secret"
	// ucLimit is the broker's UPLOAD_MAX_BYTES in these tests.
	ucLimit = 64 << 10
)

// ucStackOptions vary the Uploadcare stack from its defaults.
type ucStackOptions struct {
	// brokerSecret is the secret the broker signs with; "" means the
	// project's own, anything else a misconfigured broker.
	brokerSecret string
	// emuMaxBody is the emulator's request size limit; 0 means its default.
	emuMaxBody int64
}

// newUploadcareStack is newStack for Uploadcare alone: the broker wired to
// real PostgreSQL and the emulator's signed Uploadcare project over HTTP.
func newUploadcareStack(t *testing.T, o ucStackOptions) *stack {
	t.Helper()
	ctx := context.Background()
	store := migratedStore(t)
	emu, emuURL := serveEmulator(t, emulator.Options{
		Uploadcare:   &emulator.UploadcareProject{PublicKey: ucPub, SecretKey: ucSecret, SignedUploads: true},
		MaxBodyBytes: o.emuMaxBody,
	})
	secret := o.brokerSecret
	if secret == "" {
		secret = ucSecret
	}
	client := uploadcareClient(emuURL, secret, &http.Client{Timeout: 5 * time.Second})
	svc := &metadata.Service{Store: store, Uploadcare: metadata.NewUploadcare(metadata.UploadcareSettings{
		PublicKey: ucPub, SecretKey: secret, UploadURL: client.UploadURL, TTL: 30 * time.Minute,
	}, client)}
	verifier, err := auth.New(ctx, config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{
		Service: svc, Auth: verifier, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), UploadMaxBytes: ucLimit,
	}))
	t.Cleanup(srv.Close)
	return &stack{t: t, URL: srv.URL, Emu: emu, EmuURL: emuURL, Store: store}
}

// uploadcareDirect gets a signature for user and uploads data to the
// emulator's /base/ with exactly the returned params; it returns the UUID.
func (s *stack) uploadcareDirect(user, name string, data []byte) string {
	s.t.Helper()
	sig := s.do("GET", "/generate-signature?provider=uploadcare", user, "")
	if sig.Status != 200 {
		s.t.Fatalf("generate-signature: %d %s", sig.Status, sig.Raw)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range sig.Body["params"].(map[string]any) {
		_ = mw.WriteField(k, v.(string))
	}
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", sig.Body["upload_url"].(string)+"?jsonerrors=1", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	r := send(s.t, req)
	id, _ := r.Body["file"].(string)
	if r.Status != 200 || id == "" {
		s.t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	return id
}

func (s *stack) saveUploadcare(user, uuid string) response {
	s.t.Helper()
	return s.do("POST", "/save-metadata", user, fmt.Sprintf(`{"uuid":%q}`, uuid))
}

// postUpload sends POST /upload with a raw multipart body.
func (s *stack) postUpload(user, contentType string, body io.Reader) response {
	s.t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/upload", body)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+tokenFor(s.t, user))
	}
	return send(s.t, req)
}

// uploadFile is POST /upload of one file part (and fileName when set).
func (s *stack) uploadFile(user, fileName, partName string, data []byte) response {
	s.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if fileName != "" {
		_ = mw.WriteField("fileName", fileName)
	}
	fw, _ := mw.CreateFormFile("file", partName)
	_, _ = fw.Write(data)
	_ = mw.Close()
	return s.postUpload(user, mw.FormDataContentType(), &buf)
}

func TestGenerateSignatureUploadcare(t *testing.T) {
	s := newUploadcareStack(t, ucStackOptions{})
	// The only configured provider is the default.
	r := s.do("GET", "/generate-signature", "alice", "")
	if r.Status != 200 || r.Body["provider"] != "uploadcare" {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	params := map[string]string{}
	for k, v := range r.Body["params"].(map[string]any) {
		params[k] = v.(string)
	}
	expire := int64(r.Body["expire"].(float64))
	if r.Body["signature"] != signer.SignUploadcareUpload(ucSecret, expire) || r.Body["secureSignature"] != r.Body["signature"] ||
		r.Body["secureExpire"] != fmt.Sprint(expire) || params["expire"] != fmt.Sprint(expire) || params["signature"] != r.Body["signature"] {
		t.Errorf("signature fields: %s", r.Raw)
	}
	if params["UPLOADCARE_PUB_KEY"] != ucPub || params["UPLOADCARE_STORE"] != "0" || r.Body["public_key"] != ucPub ||
		r.Body["upload_url"] != s.EmuURL+"/uploadcare/upload/base/" || len(params) != 5 {
		t.Errorf("params: %v, upload_url %v", params, r.Body["upload_url"])
	}
	intent, ok := metadata.NewIntentSigner(ucSecret).Verify(params["metadata[broker_intent]"])
	if !ok || intent.UserID != "alice" || intent.Expire.Unix() != expire {
		t.Errorf("intent %q verifies as %+v, %v", params["metadata[broker_intent]"], intent, ok)
	}
	if expires, err := time.Parse(time.RFC3339, r.Body["expires_at"].(string)); err != nil || expires.Unix() != expire {
		t.Errorf("expires_at %v, expire %d", r.Body["expires_at"], expire)
	}
	again := s.do("GET", "/generate-signature?provider=uploadcare&resource_type=image", "alice", "")
	if again.Status != 200 || again.Body["params"].(map[string]any)["metadata[broker_intent]"] == params["metadata[broker_intent]"] {
		t.Errorf("second intent is not fresh: %s", again.Raw)
	}
	for _, q := range []string{"?provider=uploadcare&resource_type=pdf", "?provider=cloudinary"} {
		if r := s.do("GET", "/generate-signature"+q, "alice", ""); r.Status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s: %d %s", q, r.Status, r.Raw)
		}
	}
}

func TestSaveMetadataUploadcare(t *testing.T) {
	s := newUploadcareStack(t, ucStackOptions{})
	uuid := s.uploadcareDirect("alice", "cat.png", pngBytes)
	if r := s.saveUploadcare("bob", uuid); r.Status != 403 || r.code() != "forbidden" {
		t.Errorf("bob: %d %s", r.Status, r.Raw)
	}
	if n := s.countFiles(); n != 0 {
		t.Fatalf("%d rows after a refusal", n)
	}

	// Uploadcare failing: 502, nothing recorded, the same save works later.
	for _, f := range []emulator.Faults{{FailStatus: 503}, {FailStatus: 429}, {CloseConn: true}} {
		s.Emu.SetFaults(f)
		if r := s.saveUploadcare("alice", uuid); r.Status != 502 || r.code() != "provider_unavailable" {
			t.Errorf("with fault %+v: %d %s", f, r.Status, r.Raw)
		}
	}
	s.Emu.SetFaults(emulator.Faults{})
	if n := s.countFiles(); n != 0 {
		t.Fatalf("%d rows after provider failures", n)
	}

	r := s.saveUploadcare("alice", uuid)
	if r.Status != 201 {
		t.Fatalf("save: %d %s", r.Status, r.Raw)
	}
	f := r.Body["file"].(map[string]any)
	if f["provider"] != "uploadcare" || f["provider_id"] != uuid || f["width"] != 1.0 || f["height"] != 1.0 ||
		f["format"] != "png" || f["mime_type"] != "image/png" || f["url"] != s.EmuURL+"/uploadcare/cdn/"+uuid+"/" ||
		f["bytes"] != float64(len(pngBytes)) || f["original_filename"] != "cat.png" || f["resource_type"] != "image" {
		t.Errorf("recorded: %v", f)
	}
	if r := s.saveUploadcare("alice", uuid); r.Status != 200 || r.Body["file"].(map[string]any)["id"] != f["id"] {
		t.Errorf("again: %d %s", r.Status, r.Raw)
	}
	// The provider is inferred from the field name, or given.
	for _, body := range []string{`{"file_id":%q}`, `{"provider":"uploadcare","file":%q}`} {
		if r := s.do("POST", "/save-metadata", "alice", fmt.Sprintf(body, uuid)); r.Status != 200 {
			t.Errorf("%s: %d %s", body, r.Status, r.Raw)
		}
	}
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"uuid":"00000000-0000-4000-8000-000000000000"}`, 422, "upload_not_found"},
		{`{"uuid":"not-a-uuid"}`, 400, "invalid_request"},
		{`{"uuid":["x"]}`, 400, "invalid_request"},
		{`{"provider":"uploadcare"}`, 400, "invalid_request"},
		{`{"public_id":"uploads/x"}`, 400, "invalid_request"}, // Cloudinary is not configured here
	} {
		if r := s.do("POST", "/save-metadata", "alice", tc.body); r.Status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s", tc.body, r.Status, r.Raw)
		}
	}
	if n := s.countFiles(); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

func TestDeleteUploadcareFile(t *testing.T) {
	s := newUploadcareStack(t, ucStackOptions{})
	uuid := s.uploadcareDirect("alice", "a.txt", []byte("abc"))
	id := s.saveUploadcare("alice", uuid).Body["file"].(map[string]any)["id"].(string)

	s.Emu.SetFaults(emulator.Faults{FailStatus: 500})
	if r := s.do("DELETE", "/files/"+id, "alice", ""); r.Status != 502 || r.code() != "provider_unavailable" {
		t.Errorf("delete while Uploadcare fails: %d %s", r.Status, r.Raw)
	}
	s.Emu.SetFaults(emulator.Faults{})
	if r := s.do("GET", "/files/"+id, "alice", ""); r.Status != 200 {
		t.Fatalf("the record went with the failed delete: %d %s", r.Status, r.Raw)
	}
	if r := s.do("DELETE", "/files/"+id, "alice", ""); r.Status != 200 || r.Body["success"] != true {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	resp, err := http.Get(s.EmuURL + "/uploadcare/cdn/" + uuid + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("CDN after delete: %d", resp.StatusCode)
	}
	if n := s.countFiles(); n != 0 {
		t.Errorf("%d rows after delete", n)
	}
}

func TestUploadToUploadcare(t *testing.T) {
	s := newUploadcareStack(t, ucStackOptions{})
	r := s.uploadFile("alice", "", "cat.png", pngBytes)
	if r.Status != 201 || r.Body["success"] != true {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	f := r.Body["file"].(map[string]any)
	if r.Body["fileUrl"] != f["url"] || f["width"] != 1.0 || f["original_filename"] != "cat.png" || f["user_id"] != "alice" {
		t.Errorf("answer: %s", r.Raw)
	}
	// fileName wins over the part's name, and is cut to a base name.
	if r := s.uploadFile("alice", `..\dir/notes.txt`, "x.bin", []byte("notes")); r.Status != 201 || r.Body["file"].(map[string]any)["original_filename"] != "notes.txt" {
		t.Errorf("fileName: %d %s", r.Status, r.Raw)
	}
	rows := s.countFiles()

	refusals := []struct {
		name   string
		send   func() response
		status int
		code   string
	}{
		{"over UPLOAD_MAX_BYTES", func() response { return s.uploadFile("alice", "", "big.bin", make([]byte, ucLimit+1)) }, 413, "payload_too_large"},
		{"cut off before the file ends", func() response {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			fw, _ := mw.CreateFormFile("file", "cut.bin")
			_, _ = fw.Write(make([]byte, 4096))
			return s.postUpload("alice", mw.FormDataContentType(), &buf) // no closing boundary
		}, 400, "invalid_request"},
		{"not multipart", func() response { return s.postUpload("alice", "application/octet-stream", strings.NewReader("x")) }, 400, "invalid_request"},
		{"no file part", func() response {
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			_ = mw.WriteField("fileName", "x.txt")
			_ = mw.Close()
			return s.postUpload("alice", mw.FormDataContentType(), &buf)
		}, 400, "invalid_request"},
		{"no token", func() response { return s.postUpload("", "multipart/form-data; boundary=x", strings.NewReader("")) }, 401, "unauthorized"},
		{"Uploadcare unavailable", func() response {
			s.Emu.SetFaults(emulator.Faults{FailStatus: 503})
			defer s.Emu.SetFaults(emulator.Faults{})
			return s.uploadFile("alice", "", "a.txt", []byte("abc"))
		}, 502, "provider_unavailable"},
		{"Uploadcare unreachable", func() response {
			s.Emu.SetFaults(emulator.Faults{CloseConn: true})
			defer s.Emu.SetFaults(emulator.Faults{})
			return s.uploadFile("alice", "", "a.txt", []byte("abc"))
		}, 502, "provider_unavailable"},
	}
	for _, tc := range refusals {
		if r := tc.send(); r.Status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}
	if n := s.countFiles(); n != rows {
		t.Errorf("%d rows after refusals, want %d", n, rows)
	}
}

// Uploadcare's own refusals of a server-side upload: a file too large for
// its direct upload is the client's 413; a signature it does not accept is
// the broker's misconfiguration, 502, not the client's fault.
func TestUploadRefusedByUploadcare(t *testing.T) {
	small := newUploadcareStack(t, ucStackOptions{emuMaxBody: 8 << 10})
	if r := small.uploadFile("alice", "", "a.bin", make([]byte, 16<<10)); r.Status != 413 || r.code() != "payload_too_large" {
		t.Errorf("over Uploadcare's limit: %d %s", r.Status, r.Raw)
	}
	wrong := newUploadcareStack(t, ucStackOptions{brokerSecret: "not-the-project-secret"})
	if r := wrong.uploadFile("alice", "", "a.txt", []byte("abc")); r.Status != 502 || r.code() != "provider_unavailable" {
		t.Errorf("with a wrong secret: %d %s", r.Status, r.Raw)
	}
	if small.countFiles()+wrong.countFiles() != 0 {
		t.Error("a refused upload was recorded")
	}
}

func TestUploadWithoutUploadcare(t *testing.T) {
	s := newStack(t) // Cloudinary only
	if r := s.uploadFile("alice", "", "a.txt", []byte("abc")); r.Status != 400 || r.code() != "invalid_request" {
		t.Errorf("%d %s", r.Status, r.Raw)
	}
}
