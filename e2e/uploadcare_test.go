package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/signer"
)

// The Uploadcare project `broker emulate` plays and the broker signs for.
const (
	ucPublicKey = "e2epublickey0000"
	ucSecretKey = "e2e-uploadcare-secret-key"
	// ucUploadLimit is the broker's UPLOAD_MAX_BYTES in these tests.
	ucUploadLimit = 256 << 10
)

// startUploadcareStack runs `broker emulate` for the Uploadcare project and
// `broker serve` against it and a fresh database, wired with the variables
// the emulator logs at start.
func startUploadcareStack(t *testing.T) (broker, emu *process) {
	t.Helper()
	emu = start(t, map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"UPLOADCARE_PUBLIC_KEY": ucPublicKey,
		"UPLOADCARE_SECRET_KEY": ucSecretKey,
	}, "emulate")
	for _, want := range []string{`"uploadcare_upload_url":"` + emu.URL + `/uploadcare/upload"`, `"uploadcare_api_url":"` + emu.URL + `/uploadcare/api"`, `"uploadcare_cdn_url":"` + emu.URL + `/uploadcare/cdn"`} {
		if !strings.Contains(emu.Output(), want) {
			t.Errorf("broker emulate did not log %s:\n%s", want, emu.Output())
		}
	}
	broker = start(t, map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"DATABASE_URL":          testdb.PostgresURL(t),
		"UPLOADCARE_PUBLIC_KEY": ucPublicKey,
		"UPLOADCARE_SECRET_KEY": ucSecretKey,
		"UPLOADCARE_UPLOAD_URL": emu.URL + "/uploadcare/upload",
		"UPLOADCARE_API_URL":    emu.URL + "/uploadcare/api",
		"UPLOADCARE_CDN_URL":    emu.URL + "/uploadcare/cdn",
		"UPLOAD_MAX_BYTES":      strconv.Itoa(ucUploadLimit),
		"AUTH_JWT_SECRET":       jwtSecret,
		"RATE_LIMIT_PER_MINUTE": "0",
	}, "serve")
	return broker, emu
}

// reply is a decoded JSON answer.
type reply struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (r reply) code() string { s, _ := r.Body["code"].(string); return s }

func (r reply) file() map[string]any { f, _ := r.Body["file"].(map[string]any); return f }

// call sends a request with a bearer token ("" for none) and decodes the
// JSON answer.
func call(t *testing.T, method, url, tok, contentType string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return sendRequest(t, req)
}

func sendRequest(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", req.Method, req.URL, err)
	}
	r := reply{Status: resp.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return r
}

func saveUploadcare(t *testing.T, broker *process, tok, uuid string) reply {
	t.Helper()
	return call(t, "POST", broker.URL+"/save-metadata", tok, "application/json",
		strings.NewReader(fmt.Sprintf(`{"provider":"uploadcare","uuid":%q}`, uuid)))
}

// listUploadcare returns the user's Uploadcare files as the broker lists them.
func listUploadcare(t *testing.T, broker *process, tok string) []any {
	t.Helper()
	r := call(t, "GET", broker.URL+"/files?provider=uploadcare&limit=100", tok, "", nil)
	if r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	files, _ := r.Body["files"].([]any)
	return files
}

// ucPNG is a 2×3 PNG.
var ucPNG = func() []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 2, 3))); err != nil {
		panic(err)
	}
	return buf.Bytes()
}()

// uploadDirect posts a file to the Upload API's /base/ with fields, as a
// browser would with what /generate-signature returned; it returns the
// file's UUID, or fails the test with the Upload API's error.
func uploadDirect(t *testing.T, target string, fields map[string]string, name string, data []byte) string {
	t.Helper()
	id, errBody := tryUploadDirect(t, target, fields, name, data)
	if id == "" {
		t.Fatalf("upload to %s refused: %s", target, errBody)
	}
	return id
}

func tryUploadDirect(t *testing.T, target string, fields map[string]string, name string, data []byte) (uuid, errBody string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write(data)
	_ = mw.Close()
	r := call(t, "POST", target+"?jsonerrors=1", "", mw.FormDataContentType(), &buf)
	if id, _ := r.Body["file"].(string); r.Status == 200 && id != "" {
		return id, ""
	}
	return "", r.Raw
}

// emulatorFile reads a file through the emulator's REST API.
func emulatorFile(t *testing.T, emu *process, uuid string) reply {
	t.Helper()
	req, _ := http.NewRequest("GET", emu.URL+"/uploadcare/api/files/"+uuid+"/", nil)
	req.Header.Set("Accept", "application/vnd.uploadcare-v0.7+json")
	req.Header.Set("Authorization", "Uploadcare.Simple "+ucPublicKey+":"+ucSecretKey)
	return sendRequest(t, req)
}

func fetch(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestUploadcareSignedUploadSaveAndDelete is the issue's acceptance path for
// a browser-side upload: sign, upload to /base/ with exactly the returned
// fields, save for the uploader only, list, delete at Uploadcare.
func TestUploadcareSignedUploadSaveAndDelete(t *testing.T) {
	broker, emu := startUploadcareStack(t)
	alice, bob := token(t, "alice"), token(t, "bob@example.com")

	sig := call(t, "GET", broker.URL+"/generate-signature?provider=uploadcare", alice, "", nil)
	if sig.Status != 200 || sig.Body["success"] != true || sig.Body["provider"] != "uploadcare" {
		t.Fatalf("generate-signature: %d %s", sig.Status, sig.Raw)
	}
	expire := int64(sig.Body["expire"].(float64))
	params := map[string]string{}
	for k, v := range sig.Body["params"].(map[string]any) {
		params[k] = v.(string)
	}
	switch {
	case sig.Body["secureSignature"] != sig.Body["signature"] || sig.Body["secureExpire"] != strconv.FormatInt(expire, 10):
		t.Errorf("file-uploader names differ from the plain ones: %s", sig.Raw)
	case sig.Body["signature"] != signer.SignUploadcareUpload(ucSecretKey, expire):
		t.Errorf("signature is not HMAC-SHA256(secret, expire): %s", sig.Raw)
	case params["signature"] != sig.Body["signature"] || params["expire"] != sig.Body["secureExpire"] ||
		params["UPLOADCARE_PUB_KEY"] != ucPublicKey || params["UPLOADCARE_STORE"] != "0" || sig.Body["public_key"] != ucPublicKey:
		t.Errorf("params: %v", params)
	case sig.Body["upload_url"] != emu.URL+"/uploadcare/upload/base/":
		t.Errorf("upload_url %v", sig.Body["upload_url"])
	case params["metadata[broker_intent]"] == "":
		t.Errorf("no intent in params: %v", params)
	}
	if d := time.Until(time.Unix(expire, 0)); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("expire is %v away, want SIGNATURE_TTL (30m)", d)
	}

	uuid := uploadDirect(t, sig.Body["upload_url"].(string), params, "cat.png", ucPNG)

	// Another user cannot claim it, before or after its owner saved it,
	// and nothing is recorded for them.
	if r := saveUploadcare(t, broker, bob, uuid); r.Status != 403 || r.code() != "forbidden" {
		t.Errorf("bob saving alice's upload: %d %s", r.Status, r.Raw)
	}

	first := saveUploadcare(t, broker, alice, uuid)
	if first.Status != 201 || first.Body["success"] != true {
		t.Fatalf("first save: %d %s", first.Status, first.Raw)
	}
	f := first.file()
	for k, want := range map[string]any{
		"provider": "uploadcare", "provider_id": uuid, "user_id": "alice", "url": emu.URL + "/uploadcare/cdn/" + uuid + "/",
		"resource_type": "image", "bytes": float64(len(ucPNG)), "mime_type": "image/png", "format": "png",
		"width": 2.0, "height": 3.0, "original_filename": "cat.png",
	} {
		if f[k] != want {
			t.Errorf("file.%s = %#v, want %#v", k, f[k], want)
		}
	}
	again := saveUploadcare(t, broker, alice, uuid)
	if again.Status != 200 || again.file()["id"] != f["id"] {
		t.Errorf("second save: %d %s", again.Status, again.Raw)
	}
	// file_id and file (the /base/ answer's key) name the UUID too.
	for _, body := range []string{`{"file_id":%q}`, `{"file":%q}`} {
		r := call(t, "POST", broker.URL+"/save-metadata", alice, "application/json", strings.NewReader(fmt.Sprintf(body, uuid)))
		if r.Status != 200 || r.file()["id"] != f["id"] {
			t.Errorf("save with %s: %d %s", body, r.Status, r.Raw)
		}
	}
	if r := saveUploadcare(t, broker, bob, uuid); r.Status != 403 {
		t.Errorf("bob after alice saved: %d %s", r.Status, r.Raw)
	}
	if files := listUploadcare(t, broker, bob); len(files) != 0 {
		t.Errorf("bob has files: %v", files)
	}

	// Saving stored the file at Uploadcare, so it outlives the 24 h.
	if r := emulatorFile(t, emu, uuid); r.Status != 200 || r.Body["datetime_stored"] == nil {
		t.Errorf("emulator after save: %d %s", r.Status, r.Raw)
	}
	if status, body := fetch(t, f["url"].(string)); status != 200 || !bytes.Equal(body, ucPNG) {
		t.Errorf("CDN URL of the record: %d, %d bytes", status, len(body))
	}

	files := listUploadcare(t, broker, alice)
	if len(files) != 1 || files[0].(map[string]any)["id"] != f["id"] {
		t.Fatalf("alice's files: %v", files)
	}
	if r := call(t, "GET", broker.URL+"/files/"+f["id"].(string), bob, "", nil); r.Status != 404 {
		t.Errorf("bob reading alice's file: %d %s", r.Status, r.Raw)
	}

	if r := call(t, "DELETE", broker.URL+"/files/"+f["id"].(string), bob, "", nil); r.Status != 404 {
		t.Errorf("bob deleting alice's file: %d %s", r.Status, r.Raw)
	}
	if r := emulatorFile(t, emu, uuid); r.Body["datetime_removed"] != nil {
		t.Fatal("bob's delete reached Uploadcare")
	}
	del := call(t, "DELETE", broker.URL+"/files/"+f["id"].(string), alice, "", nil)
	if del.Status != 200 || del.Body["success"] != true {
		t.Fatalf("delete: %d %s", del.Status, del.Raw)
	}
	if r := emulatorFile(t, emu, uuid); r.Status != 200 || r.Body["datetime_removed"] == nil {
		t.Errorf("emulator after delete: %d %s", r.Status, r.Raw)
	}
	if status, _ := fetch(t, f["url"].(string)); status != 404 {
		t.Errorf("CDN after delete: %d", status)
	}
	if r := call(t, "GET", broker.URL+"/files/"+f["id"].(string), alice, "", nil); r.Status != 404 || r.code() != "not_found" {
		t.Errorf("record after delete: %d %s", r.Status, r.Raw)
	}
	// A deleted file cannot be saved again.
	if r := saveUploadcare(t, broker, alice, uuid); r.Status != 422 || r.code() != "upload_not_found" {
		t.Errorf("saving a deleted file: %d %s", r.Status, r.Raw)
	}
}

// TestUploadcareSaveRefusals: files the broker did not sign for this user,
// or that do not exist, are not recorded.
func TestUploadcareSaveRefusals(t *testing.T) {
	broker, emu := startUploadcareStack(t)
	alice := token(t, "alice")
	base := emu.URL + "/uploadcare/upload/base/"
	intents := metadata.NewIntentSigner(ucSecretKey)

	// Uploads a real client could make with the project's keys (say, a
	// leaked signature) but without a valid intent of the broker's.
	signedFields := func(intent string) map[string]string {
		expire := time.Now().Add(10 * time.Minute).Unix()
		fields := map[string]string{
			"UPLOADCARE_PUB_KEY": ucPublicKey, "UPLOADCARE_STORE": "0",
			"signature": signer.SignUploadcareUpload(ucSecretKey, expire), "expire": strconv.FormatInt(expire, 10),
		}
		if intent != "" {
			fields["metadata[broker_intent]"] = intent
		}
		return fields
	}
	good, err := intents.Issue("alice", time.Now().Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := intents.Issue("alice", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	forgedMAC := good[:len(good)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(good, "0")]
	otherKey, err := metadata.NewIntentSigner("another-broker-secret").Issue("alice", time.Now().Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// Alice's intent with bob's user segment in it: the MAC no longer fits.
	parts := strings.Split(good, ".")
	parts[1] = metadata.UserSegment("bob")
	reassigned := strings.Join(parts, ".")

	for _, tc := range []struct{ name, intent string }{
		{"no intent", ""},
		{"forged MAC", forgedMAC},
		{"intent of another broker", otherKey},
		{"intent moved to another user", reassigned},
		{"expired intent", expired},
	} {
		uuid := uploadDirect(t, base, signedFields(tc.intent), "x.png", ucPNG)
		if r := saveUploadcare(t, broker, alice, uuid); r.Status != 403 || r.code() != "forbidden" {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}
	if r := saveUploadcare(t, broker, alice, uploadDirect(t, base, signedFields(good), "x.png", ucPNG)); r.Status != 201 {
		t.Errorf("control upload with a good intent: %d %s", r.Status, r.Raw)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown UUID", `{"provider":"uploadcare","uuid":"00000000-0000-4000-8000-000000000000"}`, 422, "upload_not_found"},
		{"not a UUID", `{"provider":"uploadcare","uuid":"../../webhooks/"}`, 400, "invalid_request"},
		{"UUID of the wrong type", `{"provider":"uploadcare","uuid":42}`, 400, "invalid_request"},
		{"no UUID", `{"provider":"uploadcare"}`, 400, "invalid_request"},
	} {
		r := call(t, "POST", broker.URL+"/save-metadata", alice, "application/json", strings.NewReader(tc.body))
		if r.Status != tc.status || r.code() != tc.code {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}
	if files := listUploadcare(t, broker, alice); len(files) != 1 {
		t.Errorf("alice has %d files, want only the control upload", len(files))
	}

	// The Upload API itself refuses a stale signature, with its own error.
	stale := signedFields("")
	old := time.Now().Add(-time.Minute).Unix()
	stale["expire"], stale["signature"] = strconv.FormatInt(old, 10), signer.SignUploadcareUpload(ucSecretKey, old)
	if id, errBody := tryUploadDirect(t, base, stale, "x.png", ucPNG); id != "" || !strings.Contains(errBody, `"error_code":"SignatureExpirationError"`) {
		t.Errorf("stale signature: uuid %q, %s", id, errBody)
	}
}

// uploadForm is the guide's POST /upload body: fileName, then file.
func uploadForm(fileName, partName string, data io.Reader) (io.Reader, string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if fileName != "" {
				if err := mw.WriteField("fileName", fileName); err != nil {
					return err
				}
			}
			fw, err := mw.CreateFormFile("file", partName)
			if err != nil {
				return err
			}
			if _, err := io.Copy(fw, data); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr, mw.FormDataContentType()
}

// TestUploadcareServerUpload is the guide's POST /upload: streamed to the
// emulator, recorded, answered with fileUrl; over UPLOAD_MAX_BYTES it is
// 413 with nothing recorded, whether the size was declared or not.
func TestUploadcareServerUpload(t *testing.T) {
	broker, emu := startUploadcareStack(t)
	alice := token(t, "alice")

	body, ct := uploadForm("notes.txt", "ignored-name.bin", strings.NewReader("hello from the server side"))
	r := call(t, "POST", broker.URL+"/upload", alice, ct, body)
	if r.Status != 201 || r.Body["success"] != true {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	f := r.file()
	uuid, _ := f["provider_id"].(string)
	if r.Body["fileUrl"] != f["url"] || f["url"] != emu.URL+"/uploadcare/cdn/"+uuid+"/" ||
		f["original_filename"] != "notes.txt" || f["bytes"] != 26.0 || f["user_id"] != "alice" || f["provider"] != "uploadcare" ||
		f["resource_type"] != "raw" {
		t.Errorf("answer: %s", r.Raw)
	}
	if status, data := fetch(t, r.Body["fileUrl"].(string)); status != 200 || string(data) != "hello from the server side" {
		t.Errorf("fileUrl serves %d %q", status, data)
	}
	if e := emulatorFile(t, emu, uuid); e.Body["datetime_stored"] == nil || e.Body["metadata"].(map[string]any)["broker_intent"] == nil {
		t.Errorf("at the emulator: %s", e.Raw)
	}
	// Only its uploader can claim it afterwards.
	if r := saveUploadcare(t, broker, token(t, "bob"), uuid); r.Status != 403 {
		t.Errorf("bob claiming alice's /upload: %d %s", r.Status, r.Raw)
	}

	// An image is described like a direct upload.
	body, ct = uploadForm("", "cat.png", bytes.NewReader(ucPNG))
	if r := call(t, "POST", broker.URL+"/upload", alice, ct, body); r.Status != 201 || r.file()["width"] != 2.0 || r.file()["original_filename"] != "cat.png" {
		t.Errorf("image upload: %d %s", r.Status, r.Raw)
	}

	// Just at the limit is accepted.
	body, ct = uploadForm("limit.bin", "limit.bin", bytes.NewReader(make([]byte, ucUploadLimit)))
	if r := call(t, "POST", broker.URL+"/upload", alice, ct, body); r.Status != 201 || r.file()["bytes"] != float64(ucUploadLimit) {
		t.Errorf("upload of exactly UPLOAD_MAX_BYTES: %d %s", r.Status, r.Raw)
	}

	// One byte over, streamed without a length: cut off mid-stream.
	body, ct = uploadForm("big.bin", "big.bin", bytes.NewReader(make([]byte, ucUploadLimit+1)))
	if r := call(t, "POST", broker.URL+"/upload", alice, ct, body); r.Status != 413 || r.code() != "payload_too_large" {
		t.Errorf("streamed over the limit: %d %s", r.Status, r.Raw)
	}
	// Far over, with Content-Length: refused before reading.
	var big bytes.Buffer
	mw := multipart.NewWriter(&big)
	fw, _ := mw.CreateFormFile("file", "huge.bin")
	_, _ = fw.Write(make([]byte, 2*ucUploadLimit))
	_ = mw.Close()
	if r := call(t, "POST", broker.URL+"/upload", alice, mw.FormDataContentType(), bytes.NewReader(big.Bytes())); r.Status != 413 || r.code() != "payload_too_large" {
		t.Errorf("declared over the limit: %d %s", r.Status, r.Raw)
	}
	if files := listUploadcare(t, broker, alice); len(files) != 3 {
		t.Errorf("alice has %d files, want the 3 accepted uploads", len(files))
	}

	for _, tc := range []struct {
		name, ct, body string
	}{
		{"not multipart", "application/json", `{"file":"x"}`},
		{"no file part", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"fileName\"\r\n\r\nx\r\n--b--\r\n"},
	} {
		if r := call(t, "POST", broker.URL+"/upload", alice, tc.ct, strings.NewReader(tc.body)); r.Status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}
	if r := call(t, "POST", broker.URL+"/upload", "", ct, strings.NewReader("")); r.Status != 401 {
		t.Errorf("without a token: %d %s", r.Status, r.Raw)
	}
}
