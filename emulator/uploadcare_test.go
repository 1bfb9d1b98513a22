package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/signer"
)

// The project of the spec's captures (§2.8) and vectors (S4, R2–R4).
const (
	ucPub    = "demopublickey"
	ucSecret = "demosecretkey"
	// ucS4Expire and ucS4Sig are vector S4 (2030-01-01).
	ucS4Expire = "1893456000"
	ucS4Sig    = "dfefd810fff122deef32a58e01fc143b84d5ab16757ccf8644f8e1d23711a627"
	// ucVectorUUID is the file of vectors R2–R4.
	ucVectorUUID = "17be4678-dab7-4bc7-8753-28914a22960a"
)

// newUCEnv is newEnv with a signed Uploadcare project and no Cloudinary.
func newUCEnv(t *testing.T, mutate func(*UploadcareProject)) *testEnv {
	t.Helper()
	proj := &UploadcareProject{PublicKey: ucPub, SecretKey: ucSecret, SignedUploads: true}
	if mutate != nil {
		mutate(proj)
	}
	return newEnv(t, func(o *Options) {
		o.Cloudinary = nil
		o.Uploadcare = proj
	})
}

func (env *testEnv) ucUpload(path string) string { return env.srv.URL + "/uploadcare/upload" + path }
func (env *testEnv) ucAPI(path string) string    { return env.srv.URL + "/uploadcare/api" + path }
func (env *testEnv) ucCDN(path string) string    { return env.srv.URL + "/uploadcare/cdn" + path }

// ucField is one form field; order matters to the Upload API's clients.
type ucField struct{ name, value string }

// ucSigned is the field list upload-client 6.21.0 sends for a signed
// upload (§2.8), with S4's signature, before the file.
func ucSigned(store string, extra ...ucField) []ucField {
	return append([]ucField{
		{"UPLOADCARE_PUB_KEY", ucPub},
		{"UPLOADCARE_STORE", store},
		{"signature", ucS4Sig},
		{"expire", ucS4Expire},
		{"source", "local"},
	}, extra...)
}

// postBase sends a /base/ request as upload-client does: the file part
// first (when data is non-nil), then the fields in order.
func postBase(t *testing.T, target string, fields []ucField, filename, contentType string, data []byte) answer {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if data != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", multipart.FileContentDisposition("file", filename))
		h.Set("Content-Type", contentType)
		pw, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pw.Write(data)
	}
	for _, f := range fields {
		if err := mw.WriteField(f.name, f.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, target, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-UC-User-Agent", "UploadcareUploadClient/6.21.0/"+ucPub+" (JavaScript)")
	return do(t, req)
}

// uploadUC uploads data and returns the new file's UUID.
func (env *testEnv) uploadUC(t *testing.T, store string, data []byte, filename string, extra ...ucField) string {
	t.Helper()
	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), ucSigned(store, extra...), filename, "application/octet-stream", data)
	m := a.json(t)
	id, _ := m["file"].(string)
	if a.status != http.StatusOK || !ucUUIDPattern.MatchString(id) {
		t.Fatalf("upload: %d %s", a.status, a.body)
	}
	return id
}

// wantUCError checks an Upload API error in both of its forms.
func wantUCError(t *testing.T, a answer, jsonErrors bool, status int, code, content string) {
	t.Helper()
	if jsonErrors {
		if a.status != http.StatusOK {
			t.Fatalf("status %d under jsonerrors, want 200; body %s", a.status, a.body)
		}
		// The envelope in the key order of the spec's capture (§1.4).
		want, _ := marshalJSON(map[string]any{"error": struct {
			Content    string `json:"content"`
			StatusCode int    `json:"status_code"`
			ErrorCode  string `json:"error_code"`
		}{content, status, code}})
		if string(a.body) != string(want) {
			t.Fatalf("body = %s\nwant   %s", a.body, want)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("Content-Type %q", ct)
		}
		return
	}
	if a.status != status || string(a.body) != content {
		t.Fatalf("got %d %q, want %d %q", a.status, a.body, status, content)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want text/plain", ct)
	}
}

func TestUCBaseSignedUploadAsUploadClientSendsIt(t *testing.T) {
	env := newUCEnv(t, nil)
	data := []byte("hello world")
	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"),
		ucSigned("1", ucField{"metadata[subsystem]", "uploader"}, ucField{"metadata[pet]", "cat"}),
		"hello.txt", "text/plain", data)
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	m := a.json(t)
	if len(m) != 1 || !ucUUIDPattern.MatchString(m["file"].(string)) {
		t.Fatalf("answer %s, want {\"file\": uuid}", a.body)
	}
	if got := a.header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q", got)
	}
	info := get(t, env.ucUpload("/info/?jsonerrors=1&pub_key="+ucPub+"&file_id="+m["file"].(string)), false).json(t)
	if info["size"] != 11.0 || info["mime_type"] != "text/plain" || info["is_stored"] != true ||
		info["metadata"].(map[string]any)["pet"] != "cat" || info["original_filename"] != "hello.txt" {
		t.Errorf("info: %v", info)
	}
}

// The answer's key is the part's field name, whatever it is (pyuploadcare
// names the part after the file, §2.2).
func TestUCBaseAnswersUnderThePartName(t *testing.T) {
	env := newUCEnv(t, nil)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range ucSigned("0") {
		_ = mw.WriteField(f.name, f.value)
	}
	fw, _ := mw.CreateFormFile("file.txt", "file.txt")
	_, _ = fw.Write([]byte("abc"))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, env.ucUpload("/base/"), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	m := do(t, req).json(t)
	if id, _ := m["file.txt"].(string); !ucUUIDPattern.MatchString(id) {
		t.Fatalf("answer %v", m)
	}
}

// TestUCBaseSignatureChecks walks §1.4's table in both error forms.
func TestUCBaseSignatureChecks(t *testing.T) {
	env := newUCEnv(t, nil)
	without := func(drop string, extra ...ucField) []ucField {
		var out []ucField
		for _, f := range ucSigned("0", extra...) {
			if f.name != drop {
				out = append(out, f)
			}
		}
		return out
	}
	// with replaces fields by name: with("expire", "1", "signature", "…").
	with := func(nameValues ...string) []ucField {
		out := ucSigned("0")
		for j := 0; j < len(nameValues); j += 2 {
			for i := range out {
				if out[i].name == nameValues[j] {
					out[i].value = nameValues[j+1]
				}
			}
		}
		return out
	}
	cases := []struct {
		name    string
		fields  []ucField
		status  int
		code    string
		content string
	}{
		{"no signature", without("signature"), 400, "SignatureRequiredError", "`signature` is required."},
		{"no expire", without("expire"), 400, "SignatureExpirationRequiredError", "`expire` is required."},
		{"expire not a number", with("expire", "soon"), 400, "SignatureExpirationInvalidError", "`expire` must be a UNIX timestamp."},
		// S8: seconds passed where milliseconds were due (§7 pitfall 1).
		{"expired (S8)", with("expire", "1893456", "signature", "5b46374f28c52a7a4916f1fa69987bec9c5f36de0bd24403827266d33e939b20"), 403, "SignatureExpirationError", "Expired signature."},
		{"wrong HMAC", with("signature", strings.Repeat("0", 64)), 403, "SignatureInvalidError", "Invalid signature."},
		// The signed message is the expire string byte for byte (pitfall 3).
		{"expire re-spelt", with("expire", "0"+ucS4Expire), 403, "SignatureInvalidError", "Invalid signature."},
		{"signature of another secret", with("signature", signer.SignUploadcareUpload("othersecret", 1893456000)), 403, "SignatureInvalidError", "Invalid signature."},
		{"no public key", without("UPLOADCARE_PUB_KEY"), 403, "ProjectPublicKeyRequiredError", "UPLOADCARE_PUB_KEY is required."},
		{"wrong public key", with("UPLOADCARE_PUB_KEY", "otherkey"), 403, "ProjectPublicKeyInvalidError", "UPLOADCARE_PUB_KEY is invalid."},
	}
	for _, tc := range cases {
		for _, jsonErrors := range []bool{true, false} {
			target := env.ucUpload("/base/")
			if jsonErrors {
				target += "?jsonerrors=1"
			}
			a := postBase(t, target, tc.fields, "a.txt", "text/plain", []byte("a"))
			t.Run(tc.name, func(t *testing.T) { wantUCError(t, a, jsonErrors, tc.status, tc.code, tc.content) })
		}
	}

	// Nothing refused was kept.
	env.e.uc.mu.Lock()
	n := len(env.e.uc.files)
	env.e.uc.mu.Unlock()
	if n != 0 {
		t.Errorf("%d files kept from refused uploads", n)
	}

	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), ucSigned("0"), "", "", nil)
	wantUCError(t, a, true, 400, "FilesRequiredError", "Request does not contain files.")
}

// The expiry is inclusive of its own second and refused one second later.
func TestUCBaseExpiryBoundary(t *testing.T) {
	env := newUCEnv(t, nil)
	expire := testNow.Unix() + 60
	fields := []ucField{
		{"UPLOADCARE_PUB_KEY", ucPub},
		{"signature", signer.SignUploadcareUpload(ucSecret, expire)},
		{"expire", "1700000060"},
	}
	env.setNow(expire)
	if a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), fields, "a.txt", "text/plain", []byte("a")); a.status != 200 || a.json(t)["file"] == nil {
		t.Fatalf("at expire: %d %s", a.status, a.body)
	}
	env.setNow(expire + 1)
	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), fields, "a.txt", "text/plain", []byte("a"))
	wantUCError(t, a, true, 403, "SignatureExpirationError", "Expired signature.")
}

func TestUCBaseUnsignedProject(t *testing.T) {
	env := newUCEnv(t, func(p *UploadcareProject) { p.SignedUploads = false })
	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), []ucField{{"UPLOADCARE_PUB_KEY", ucPub}}, "a.txt", "text/plain", []byte("a"))
	if a.status != 200 || a.json(t)["file"] == nil {
		t.Fatalf("%d %s", a.status, a.body)
	}
}

func TestUCBaseMetadataRules(t *testing.T) {
	env := newUCEnv(t, nil)
	cases := []struct {
		field   ucField
		code    string
		content string
	}{
		{ucField{"metadata[bad key]", "v"}, "FileMetadataKeyForbiddenError", "File's metadata key `bad key` contains symbols not allowed by the metadata key format."},
		{ucField{"metadata[k]", ""}, "FileMetadataValueEmptyError", "Value of the file metadata key `k` can not be empty."},
		{ucField{"metadata[" + strings.Repeat("k", 65) + "]", "v"}, "FileMetadataKeyLengthTooBigError", "Length of file metadata key `" + strings.Repeat("k", 65) + "` can not be more than 64 symbols."},
		{ucField{"metadata[k]", strings.Repeat("v", 513)}, "FileMetadataValueLengthTooBigError", "Value of file metadata's key `k` can not be more than 512 symbols in length."},
	}
	for _, tc := range cases {
		a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), ucSigned("0", tc.field), "a.txt", "text/plain", []byte("a"))
		wantUCError(t, a, true, 400, tc.code, tc.content)
	}
}

func TestUCInfo(t *testing.T) {
	env := newUCEnv(t, nil)
	data := pngBytes(t, 3, 2)
	id := env.uploadUC(t, "0", data, "IMG-0412_123.PNG", ucField{"metadata[owner]", "alice"})
	a := get(t, env.ucUpload("/info/?jsonerrors=1&pub_key="+ucPub+"&file_id="+id), false)
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %s", a.status, a.body)
	}
	info := a.json(t)
	for k, want := range map[string]any{
		"uuid": id, "file_id": id, "size": float64(len(data)), "total": float64(len(data)), "done": float64(len(data)),
		"original_filename": "IMG-0412_123.PNG", "filename": "IMG0412_123.PNG", "mime_type": "image/png",
		"is_image": true, "is_stored": false, "is_ready": true, "video_info": nil,
	} {
		if info[k] != want {
			t.Errorf("%s = %#v, want %#v", k, info[k], want)
		}
	}
	img, _ := info["image_info"].(map[string]any)
	if img["width"] != 3.0 || img["height"] != 2.0 || img["format"] != "PNG" {
		t.Errorf("image_info %v", info["image_info"])
	}
	if ci, _ := info["content_info"].(map[string]any); ci["mime"].(map[string]any)["subtype"] != "png" || ci["image"] == nil {
		t.Errorf("content_info %v", info["content_info"])
	}
	if info["metadata"].(map[string]any)["owner"] != "alice" {
		t.Errorf("metadata %v", info["metadata"])
	}

	// /info/ needs no signature: upload-client never sends one there (§1.3).
	missing := "00000000-0000-4000-8000-000000000000"
	wantUCError(t, get(t, env.ucUpload("/info/?jsonerrors=1&pub_key="+ucPub+"&file_id="+missing), false), true, 404, "FileNotFoundError", "File is not found.")
	wantUCError(t, get(t, env.ucUpload("/info/?pub_key="+ucPub+"&file_id="+missing), false), false, 404, "FileNotFoundError", "File is not found.")
	wantUCError(t, get(t, env.ucUpload("/info/?jsonerrors=1&pub_key="+ucPub), false), true, 400, "FileIdRequiredError", "file_id is required.")
	wantUCError(t, get(t, env.ucUpload("/info/?jsonerrors=1&file_id="+id), false), true, 403, "ProjectPublicKeyRequiredError", "pub_key is required.")
}

func TestUCUploadCORSPreflight(t *testing.T) {
	env := newUCEnv(t, nil)
	for _, path := range []string{"/base/?jsonerrors=1", "/info/?jsonerrors=1"} {
		req, _ := http.NewRequest(http.MethodOptions, env.ucUpload(path), nil)
		req.Header.Set("Origin", "https://app.example.com")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "x-uc-user-agent")
		a := do(t, req)
		if a.status/100 != 2 {
			t.Fatalf("%s: preflight %d %s", path, a.status, a.body)
		}
		h := a.header
		if h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "x-uc-user-agent") ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
			t.Errorf("%s: preflight headers %v", path, h)
		}
	}
}

// ucREST sends a REST request; auth is the Authorization value ("" none),
// dateHeader/date the date header to send with it.
func ucREST(t *testing.T, method, target, auth, dateHeader, date string) answer {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ucRESTType)
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if dateHeader != "" {
		req.Header.Set(dateHeader, date)
	}
	return do(t, req)
}

// signedAuth is the Authorization value for a body-less request.
func signedAuth(method, uri, date string) string {
	return "Uploadcare " + ucPub + ":" + signer.SignUploadcareREST(ucSecret, method, nil, "application/json", date, uri)
}

func wantDetail(t *testing.T, a answer, status int, detail string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	if got, _ := a.json(t)["detail"].(string); got != detail {
		t.Fatalf("detail %q, want %q", got, detail)
	}
}

// TestUCRESTVectors replays R2–R4 (made by the official rest-client) with
// the emulator's clock at their date: the signature passes, so the unknown
// file is 404, while one changed character is 401.
func TestUCRESTVectors(t *testing.T) {
	env := newUCEnv(t, nil)
	env.setNow(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	const date = "Mon, 01 Jan 2024 00:00:00 GMT"
	for _, v := range []struct{ method, path, sig string }{
		{"GET", "/files/" + ucVectorUUID + "/", "ac660a2262972109dc1daf0010509f00b97964f2"},
		{"PUT", "/files/" + ucVectorUUID + "/storage/", "749b3e088261802dc646e38af24149137a12c4d1"},
		{"DELETE", "/files/" + ucVectorUUID + "/storage/", "0579a72411032fceb4ea6104a752765d5284d333"},
	} {
		a := ucREST(t, v.method, env.ucAPI(v.path), "Uploadcare "+ucPub+":"+v.sig, "X-Uploadcare-Date", date)
		wantDetail(t, a, 404, "Not found.")
		if ct := a.header.Get("Content-Type"); ct != ucRESTType {
			t.Errorf("404 Content-Type %q", ct)
		}
		bad := v.sig[:39] + "0"
		if bad == v.sig {
			bad = v.sig[:39] + "1"
		}
		wantDetail(t, ucREST(t, v.method, env.ucAPI(v.path), "Uploadcare "+ucPub+":"+bad, "X-Uploadcare-Date", date),
			401, "Invalid signature. Please check your Secret key.")
	}
}

func TestUCRESTAuthSchemes(t *testing.T) {
	env := newUCEnv(t, nil)
	id := env.uploadUC(t, "0", []byte("hello"), "hello.txt")
	path := "/files/" + id + "/"
	uri := "/uploadcare/api" + path
	now := time.Unix(env.now.Load(), 0).UTC()
	rfc1123 := now.Format(http.TimeFormat)
	python := now.Format("Mon, 02 Jan 2006, 15:04:05 GMT") // pyuploadcare's comma (§4.2)

	ok := []struct {
		name, auth, header, date string
	}{
		{"Simple", "Uploadcare.Simple " + ucPub + ":" + ucSecret, "", ""},
		{"signed, X-Uploadcare-Date (JS)", signedAuth("GET", uri, rfc1123), "X-Uploadcare-Date", rfc1123},
		{"signed, Date (Go)", signedAuth("GET", uri, rfc1123), "Date", rfc1123},
		{"signed, pyuploadcare's date", signedAuth("GET", uri, python), "Date", python},
		{"signed over the URI from the API root", signedAuth("GET", path, rfc1123), "Date", rfc1123},
		{"signed, date 14 minutes off", signedAuth("GET", uri, now.Add(-14*time.Minute).Format(http.TimeFormat)), "Date", now.Add(-14 * time.Minute).Format(http.TimeFormat)},
		{"signed, upper-case hex", strings.ToUpper(signedAuth("GET", uri, rfc1123)[len("Uploadcare "+ucPub+":"):]), "Date", rfc1123},
	}
	for _, tc := range ok {
		auth := tc.auth
		if !strings.HasPrefix(auth, "Uploadcare") {
			auth = "Uploadcare " + ucPub + ":" + auth
		}
		a := ucREST(t, "GET", env.ucAPI(path), auth, tc.header, tc.date)
		if a.status != 200 {
			t.Errorf("%s: %d %s", tc.name, a.status, a.body)
			continue
		}
		if ct := a.header.Get("Content-Type"); ct != ucRESTType {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
		if got := a.json(t)["uuid"]; got != id {
			t.Errorf("%s: uuid %v", tc.name, got)
		}
	}

	late := now.Add(16 * time.Minute).Format(http.TimeFormat)
	refused := []struct {
		name, auth, header, date string
	}{
		{"no Authorization", "", "", ""},
		{"Simple with a wrong secret", "Uploadcare.Simple " + ucPub + ":nope", "", ""},
		{"unknown scheme", "Bearer " + ucSecret, "", ""},
		{"signed without a date", signedAuth("GET", uri, rfc1123), "", ""},
		{"signed, date 16 minutes off", signedAuth("GET", uri, late), "Date", late},
		{"signed, unreadable date", signedAuth("GET", uri, "yesterday"), "Date", "yesterday"},
		{"signed over another date than sent", signedAuth("GET", uri, rfc1123), "Date", now.Add(time.Second).Format(http.TimeFormat)},
		{"signed over another path", signedAuth("GET", uri+"?x=1", rfc1123), "Date", rfc1123},
		{"signed for another method", signedAuth("PUT", uri, rfc1123), "Date", rfc1123},
	}
	for _, tc := range refused {
		a := ucREST(t, "GET", env.ucAPI(path), tc.auth, tc.header, tc.date)
		if a.status != 401 || a.json(t)["detail"] == "" {
			t.Errorf("%s: %d %s", tc.name, a.status, a.body)
		}
	}
	a := ucREST(t, "GET", env.ucAPI(path), "Uploadcare.Simple otherpub:"+ucSecret, "", "")
	wantDetail(t, a, 401, "Public key otherpub not found.")

	// The API version is negotiated before anything else.
	req, _ := http.NewRequest("GET", env.ucAPI(path), nil)
	req.Header.Set("Authorization", "Uploadcare.Simple "+ucPub+":"+ucSecret)
	wantDetail(t, do(t, req), 406, "Incorrect Accept header provided. Make sure to specify API version. Refer to REST API docs for details.")
}

// A REST signature covers the full URI the client sent, mount prefix
// included, as the broker's client signs it under `broker dev`.
func TestUCRESTUnderMountPrefix(t *testing.T) {
	env := newUCEnv(t, nil)
	id := env.uploadUC(t, "1", []byte("x"), "x.txt")
	mux := http.NewServeMux()
	mux.Handle("/emulator/", http.StripPrefix("/emulator", env.e.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	date := time.Unix(env.now.Load(), 0).UTC().Format(http.TimeFormat)
	uri := "/emulator/uploadcare/api/files/" + id + "/"
	a := ucREST(t, "GET", srv.URL+uri, signedAuth("GET", uri, date), "Date", date)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	m := a.json(t)
	if m["url"] != srv.URL+uri || !strings.HasPrefix(m["original_file_url"].(string), srv.URL+"/emulator/uploadcare/cdn/"+id+"/") {
		t.Errorf("urls under the prefix: %v %v", m["url"], m["original_file_url"])
	}
}

func TestUCRESTFileAndStorage(t *testing.T) {
	env := newUCEnv(t, nil)
	data := pngBytes(t, 4, 5)
	id := env.uploadUC(t, "0", data, "cat.png", ucField{"metadata[broker_intent]", "v1.x"})
	simple := "Uploadcare.Simple " + ucPub + ":" + ucSecret
	rest := func(method, path string) map[string]any {
		t.Helper()
		a := ucREST(t, method, env.ucAPI(path), simple, "", "")
		if a.status != 200 {
			t.Fatalf("%s %s: %d %s", method, path, a.status, a.body)
		}
		return a.json(t)
	}

	f := rest("GET", "/files/"+id+"/")
	if f["uuid"] != id || f["size"] != float64(len(data)) || f["mime_type"] != "image/png" || f["is_image"] != true ||
		f["original_filename"] != "cat.png" || f["datetime_stored"] != nil || f["datetime_removed"] != nil ||
		f["datetime_uploaded"] != "2023-11-14T22:13:20.000000Z" || f["metadata"].(map[string]any)["broker_intent"] != "v1.x" {
		t.Errorf("file object: %v", f)
	}
	if _, ok := f["appdata"]; ok {
		t.Error("appdata present without include=appdata")
	}
	if img := f["content_info"].(map[string]any)["image"].(map[string]any); img["width"] != 4.0 || img["height"] != 5.0 {
		t.Errorf("content_info.image %v", img)
	}
	if f2 := rest("GET", "/files/"+id+"/?include=appdata"); f2["appdata"] != nil {
		t.Errorf("appdata %v", f2["appdata"])
	} else if _, ok := f2["appdata"]; !ok {
		t.Error("include=appdata did not add appdata")
	}
	cdn := f["original_file_url"].(string)
	if !strings.HasPrefix(cdn, env.srv.URL+"/uploadcare/cdn/"+id+"/") {
		t.Errorf("original_file_url %q", cdn)
	}

	env.setNow(testNow.Unix() + 60)
	stored := rest("PUT", "/files/"+id+"/storage/")
	if stored["datetime_stored"] != "2023-11-14T22:14:20.000000Z" {
		t.Errorf("after store: %v", stored)
	}
	if again := rest("PUT", "/files/"+id+"/storage/"); again["datetime_stored"] != stored["datetime_stored"] {
		t.Errorf("storing twice moved datetime_stored: %v", again["datetime_stored"])
	}

	// The CDN serves the stored bytes, with or without operations and name.
	for _, p := range []string{"/" + id + "/", "/" + id + "/cat.png", "/" + id + "/-/resize/100x/", "/" + id} {
		a := get(t, env.ucCDN(p), false)
		if a.status != 200 || !bytes.Equal(a.body, data) || a.header.Get("Content-Type") != "image/png" {
			t.Errorf("CDN %s: %d %s, %d bytes", p, a.status, a.header.Get("Content-Type"), len(a.body))
		}
	}
	if a := get(t, cdn, false); a.status != 200 || !bytes.Equal(a.body, data) {
		t.Errorf("original_file_url: %d", a.status)
	}

	removed := rest("DELETE", "/files/"+id+"/storage/")
	if removed["datetime_removed"] == nil || removed["datetime_stored"] != nil || removed["original_file_url"] != nil {
		t.Errorf("after delete: %v", removed)
	}
	if after := rest("GET", "/files/"+id+"/"); after["datetime_removed"] == nil {
		t.Errorf("a removed file is still described, with datetime_removed: %v", after)
	}
	if a := get(t, env.ucCDN("/"+id+"/"), false); a.status != 404 {
		t.Errorf("CDN after delete: %d", a.status)
	}
	wantUCError(t, get(t, env.ucUpload("/info/?jsonerrors=1&pub_key="+ucPub+"&file_id="+id), false), true, 404, "FileNotFoundError", "File is not found.")
	if again := rest("DELETE", "/files/"+id+"/storage/"); again["datetime_removed"] != removed["datetime_removed"] {
		t.Error("deleting twice changed the file")
	}
	wantDetail(t, ucREST(t, "PUT", env.ucAPI("/files/"+id+"/storage/"), simple, "", ""), 404, "Not found.")

	missing := "00000000-0000-4000-8000-000000000000"
	for _, m := range []string{"GET /files/%s/", "PUT /files/%s/storage/", "DELETE /files/%s/storage/"} {
		method, p, _ := strings.Cut(strings.Replace(m, "%s", missing, 1), " ")
		wantDetail(t, ucREST(t, method, env.ucAPI(p), simple, "", ""), 404, "Not found.")
	}
	if a := get(t, env.ucCDN("/"+missing+"/"), false); a.status != 404 {
		t.Errorf("CDN of an unknown file: %d", a.status)
	}
}

// TestUCUnstoredFilesExpire moves the emulator's clock past the 24 h an
// unstored file lives (§2.1): it disappears from /info/ and the CDN, REST
// describes it as removed, and file.deleted goes out; stored files stay.
func TestUCUnstoredFilesExpire(t *testing.T) {
	hook, ch := ucHookReceiver(t)
	env := newUCEnv(t, func(p *UploadcareProject) {
		p.WebhookTargets = []string{hook.URL}
		p.WebhookSecret = "hooksecret"
	})
	unstored := env.uploadUC(t, "0", []byte("temporary"), "t.txt")
	storedLater := env.uploadUC(t, "0", []byte("kept"), "k.txt")
	stored := env.uploadUC(t, "1", []byte("stored"), "s.txt")
	for range 3 {
		if ev := receive(t, ch, "webhook"); ev.event != "file.uploaded" {
			t.Fatalf("event %q", ev.event)
		}
	}
	simple := "Uploadcare.Simple " + ucPub + ":" + ucSecret
	if a := ucREST(t, "PUT", env.ucAPI("/files/"+storedLater+"/storage/"), simple, "", ""); a.status != 200 {
		t.Fatalf("store: %d %s", a.status, a.body)
	}
	if ev := receive(t, ch, "webhook"); ev.event != "file.stored" || ev.uuid != storedLater {
		t.Fatalf("event %+v", ev)
	}

	env.setNow(testNow.Unix() + int64(DefaultUnstoredTTL/time.Second) - 1)
	if a := get(t, env.ucCDN("/"+unstored+"/"), false); a.status != 200 {
		t.Fatalf("a second before expiry the CDN answers %d", a.status)
	}
	env.setNow(testNow.Unix() + int64(DefaultUnstoredTTL/time.Second))
	if a := get(t, env.ucCDN("/"+unstored+"/"), false); a.status != 404 {
		t.Errorf("CDN of an expired file: %d", a.status)
	}
	wantUCError(t, get(t, env.ucUpload("/info/?jsonerrors=1&pub_key="+ucPub+"&file_id="+unstored), false), true, 404, "FileNotFoundError", "File is not found.")
	a := ucREST(t, "GET", env.ucAPI("/files/"+unstored+"/"), simple, "", "")
	if a.status != 200 || a.json(t)["datetime_removed"] != "2023-11-15T22:13:20.000000Z" {
		t.Errorf("REST of an expired file: %d %s", a.status, a.body)
	}
	wantDetail(t, ucREST(t, "PUT", env.ucAPI("/files/"+unstored+"/storage/"), simple, "", ""), 404, "Not found.")
	ev := receive(t, ch, "webhook")
	if ev.event != "file.deleted" || ev.uuid != unstored || ev.initiator != "system" {
		t.Errorf("expiry webhook %+v", ev)
	}
	for _, id := range []string{stored, storedLater} {
		if a := get(t, env.ucCDN("/"+id+"/"), false); a.status != 200 {
			t.Errorf("stored file %s: CDN %d", id, a.status)
		}
	}
}

func TestUCUnstoredTTLIsConfigurable(t *testing.T) {
	env := newUCEnv(t, func(p *UploadcareProject) { p.UnstoredTTL = time.Minute })
	id := env.uploadUC(t, "0", []byte("x"), "x.txt")
	env.setNow(testNow.Unix() + 60)
	if a := get(t, env.ucCDN("/"+id+"/"), false); a.status != 404 {
		t.Errorf("after UnstoredTTL the CDN answers %d", a.status)
	}
}

type ucHookEvent struct {
	event, uuid, initiator string
}

// ucHookReceiver checks each webhook's X-Uc-Signature over the raw body
// with the secret "hooksecret" and reports the event.
func ucHookReceiver(t *testing.T) (*httptest.Server, <-chan ucHookEvent) {
	t.Helper()
	ch := make(chan ucHookEvent, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !signer.VerifyUploadcareWebhook("hooksecret", body, r.Header.Get("X-Uc-Signature")) {
			ch <- ucHookEvent{event: "bad signature: " + r.Header.Get("X-Uc-Signature")}
			return
		}
		var p struct {
			Initiator struct{ Type string }  `json:"initiator"`
			Hook      struct{ Event string } `json:"hook"`
			Data      struct{ UUID string }  `json:"data"`
			File      string                 `json:"file"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			ch <- ucHookEvent{event: "undecodable: " + err.Error()}
			return
		}
		ch <- ucHookEvent{p.Hook.Event, p.Data.UUID, p.Initiator.Type}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func TestUCUploadFaultKeepsTheEnvelope(t *testing.T) {
	env := newUCEnv(t, nil)
	env.e.SetFaults(Faults{FailStatus: http.StatusServiceUnavailable})
	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), ucSigned("0"), "a.txt", "text/plain", []byte("a"))
	wantUCError(t, a, true, 503, "UploadAPIError", "Injected fault (HTTP 503)")
	env.e.SetFaults(Faults{})
}

func TestUCBodyLimit(t *testing.T) {
	env := newUCEnv(t, nil)
	env.e.opts.MaxBodyBytes = 1 << 10
	a := postBase(t, env.ucUpload("/base/?jsonerrors=1"), ucSigned("0"), "big.bin", "application/octet-stream", bytes.Repeat([]byte("x"), 4<<10))
	wantUCError(t, a, true, 413, "RequestSizeLimitExceededError", "The size of the request is too large.")
}

// An unknown path under the REST API is its usual {"detail": "Not found."}.
func TestUCRESTUnknownPath(t *testing.T) {
	env := newUCEnv(t, nil)
	a := ucREST(t, "GET", env.ucAPI("/nothing/"), "Uploadcare.Simple "+ucPub+":"+ucSecret, "", "")
	wantDetail(t, a, 404, "Not found.")
}
