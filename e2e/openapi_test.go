package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5"

	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/signer"
)

// The Uploadcare project of the OpenAPI flow (its own names: other tests of
// the package define theirs).
const (
	oaUCPublicKey     = "oapublickey00000"
	oaUCSecretKey     = "openapi-e2e-uploadcare-secret"
	oaUCWebhookSecret = "openapi-e2e-webhook-secret"
	// oaUploadLimit is UPLOAD_MAX_BYTES, small so a 413 is cheap.
	oaUploadLimit = 64 << 10
	// oaCloudinarySecret is the API secret in cloudinaryURL.
	oaCloudinarySecret = "e2e_api_secret"
)

// requestRule says what the document must make of a request of the flow.
type requestRule int

const (
	// docValid: a correct request; the document must accept it.
	docValid requestRule = iota
	// docInvalid: broken on purpose in a way the document can express (no
	// token, a value outside an enum or a range, a body of the wrong shape);
	// the document must refuse it too, or it describes a looser API than
	// the broker serves.
	docInvalid
	// docSilent: well-formed, refused for a reason no schema can see (a
	// forged signature, another user's asset, an expired token).
	docSilent
)

// apiCheck sends requests to the running broker and holds each exchange
// against docs/openapi.yaml: the request against its operation, and the
// answer (status, headers, content type, body) against the responses the
// operation documents. An undocumented status or body shape fails the test.
type apiCheck struct {
	t      *testing.T
	base   string
	router routers.Router
	opts   *openapi3filter.Options
	// seen counts validated answers by "operationId status".
	seen map[string]int
	ops  []string
}

// oaExchange is one request of the flow.
type oaExchange struct {
	method, path string // path with its query
	token        string
	contentType  string
	body         []byte
	header       map[string]string
	rule         requestRule
	want         int // expected status
	code         string
}

// oaAnswer is the broker's answer, decoded when it is JSON.
type oaAnswer struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (a oaAnswer) file() map[string]any { f, _ := a.Body["file"].(map[string]any); return f }

// loadOpenAPI loads docs/openapi.yaml from the checkout and validates the
// document itself (structure, references, examples against their schemas).
func loadOpenAPI(t *testing.T) (*openapi3.T, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("docs/openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc, raw
}

func newAPICheck(t *testing.T, doc *openapi3.T, base string) *apiCheck {
	t.Helper()
	// The document names its server relatively ("/"); the router matches
	// absolute URLs, so point it at the broker under test.
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &apiCheck{t: t, base: base, router: router, seen: map[string]int{}}
	// kin-openapi has no decoder for the demo page's HTML; read it as a
	// string, which is what the document says it is.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
	c.opts = &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		// The document can say a bearer token is needed, not whether it
		// verifies: the broker does that, and the flow checks the 401s.
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			if in.SecurityScheme.Type != "http" || in.SecurityScheme.Scheme != "bearer" {
				return fmt.Errorf("unexpected security scheme %q", in.SecuritySchemeName)
			}
			h := in.RequestValidationInput.Request.Header.Get("Authorization")
			if !strings.HasPrefix(h, "Bearer ") || strings.TrimSpace(h[len("Bearer "):]) == "" {
				return errors.New("no bearer token")
			}
			return nil
		},
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			c.ops = append(c.ops, op.OperationID)
		}
	}
	sort.Strings(c.ops)
	return c
}

func (c *apiCheck) newRequest(x oaExchange) *http.Request {
	c.t.Helper()
	var body io.Reader
	if x.body != nil {
		body = bytes.NewReader(x.body)
	}
	req, err := http.NewRequest(x.method, c.base+x.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if x.contentType != "" {
		req.Header.Set("Content-Type", x.contentType)
	}
	if x.token != "" {
		req.Header.Set("Authorization", "Bearer "+x.token)
	}
	for k, v := range x.header {
		req.Header.Set(k, v)
	}
	return req
}

// do sends x, checks the request and the answer against the document and
// the answer's status (and code) against x, and returns the answer.
func (c *apiCheck) do(x oaExchange) oaAnswer {
	c.t.Helper()
	ctx := context.Background()
	name := x.method + " " + x.path

	req := c.newRequest(x)
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s: no operation of docs/openapi.yaml matches: %v", name, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	switch {
	case x.rule == docValid && reqErr != nil:
		c.t.Errorf("%s: the request breaks docs/openapi.yaml: %v", name, reqErr)
	case x.rule == docInvalid && reqErr == nil:
		c.t.Errorf("%s: docs/openapi.yaml accepts a request the broker must refuse (%d)", name, x.want)
	}

	resp, err := http.DefaultClient.Do(c.newRequest(x))
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("%s: read the answer: %v", name, err)
	}
	a := oaAnswer{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &a.Body)
	}
	if a.Status != x.want {
		c.t.Errorf("%s: status %d, want %d: %s", name, a.Status, x.want, raw)
	} else if x.code != "" && a.Body["code"] != x.code {
		c.t.Errorf("%s: code %v, want %s: %s", name, a.Body["code"], x.code, raw)
	}

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(raw)),
		Options:                c.opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.t.Errorf("%s: the answer %d does not match docs/openapi.yaml: %v\nbody: %.600s", name, resp.StatusCode, err, raw)
	} else {
		c.seen[fmt.Sprintf("%s %d", route.Operation.OperationID, resp.StatusCode)]++
	}
	return a
}

// json sends a JSON body.
func (c *apiCheck) json(method, path, token, body string, rule requestRule, want int, code string) oaAnswer {
	c.t.Helper()
	return c.do(oaExchange{method: method, path: path, token: token, contentType: "application/json", body: []byte(body), rule: rule, want: want, code: code})
}

func (c *apiCheck) get(path, token string, rule requestRule, want int, code string) oaAnswer {
	c.t.Helper()
	return c.do(oaExchange{method: "GET", path: path, token: token, rule: rule, want: want, code: code})
}

// oaPNG is a 3×2 PNG.
var oaPNG = func() []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 3, 2))); err != nil {
		panic(err)
	}
	return buf.Bytes()
}()

// oaMultipart builds a form of fields (in order) and one file part.
func oaMultipart(t *testing.T, fields [][2]string, fileName string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if data != nil {
		fw, err := mw.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// oaUploadToProvider posts a file straight to the provider (the emulator)
// with exactly the fields a signature answer lists, as a browser would, and
// returns the provider's JSON answer.
func oaUploadToProvider(t *testing.T, sig map[string]any) map[string]any {
	t.Helper()
	params, _ := sig["params"].(map[string]any)
	var fields [][2]string
	for k, v := range params {
		fields = append(fields, [2]string{k, v.(string)})
	}
	if sig["provider"] == "cloudinary" {
		fields = append(fields, [2]string{"api_key", sig["api_key"].(string)}, [2]string{"signature", sig["signature"].(string)})
	}
	body, ct := oaMultipart(t, fields, "cat.png", oaPNG)
	resp, err := http.Post(sig["upload_url"].(string), ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("upload to %v: %d %s", sig["upload_url"], resp.StatusCode, raw)
	}
	return out
}

func oaMustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startOpenAPIStack runs `broker emulate` for both providers and `broker
// serve` with both configured, on a fresh database; it returns the
// broker's environment too.
func startOpenAPIStack(t *testing.T) (broker, emu *process, env map[string]string) {
	t.Helper()
	emu = start(t, map[string]string{
		"ADDR":                      "127.0.0.1:0",
		"CLOUDINARY_URL":            cloudinaryURL,
		"UPLOADCARE_PUBLIC_KEY":     oaUCPublicKey,
		"UPLOADCARE_SECRET_KEY":     oaUCSecretKey,
		"UPLOADCARE_WEBHOOK_SECRET": oaUCWebhookSecret,
	}, "emulate")
	env = map[string]string{
		"ADDR":                      "127.0.0.1:0",
		"DATABASE_URL":              testdb.PostgresURL(t),
		"CLOUDINARY_URL":            cloudinaryURL,
		"CLOUDINARY_UPLOAD_PREFIX":  emu.URL + "/cloudinary",
		"CLOUDINARY_DELIVERY_URL":   emu.URL + "/cloudinary",
		"UPLOADCARE_PUBLIC_KEY":     oaUCPublicKey,
		"UPLOADCARE_SECRET_KEY":     oaUCSecretKey,
		"UPLOADCARE_WEBHOOK_SECRET": oaUCWebhookSecret,
		"UPLOADCARE_UPLOAD_URL":     emu.URL + "/uploadcare/upload",
		"UPLOADCARE_API_URL":        emu.URL + "/uploadcare/api",
		"UPLOADCARE_CDN_URL":        emu.URL + "/uploadcare/cdn",
		"UPLOAD_MAX_BYTES":          strconv.Itoa(oaUploadLimit),
		"AUTH_JWT_SECRET":           jwtSecret,
		"RATE_LIMIT_PER_MINUTE":     "0",
	}
	return start(t, env, "serve"), emu, env
}

// TestOpenAPIDescribesTheRunningBroker loads docs/openapi.yaml, validates
// it, and runs a full flow against the real binary (both providers, through
// `broker emulate`, on PostgreSQL) in which every request and every answer
// is held against the document.
func TestOpenAPIDescribesTheRunningBroker(t *testing.T) {
	doc, rawDoc := loadOpenAPI(t)
	broker, _, env := startOpenAPIStack(t)
	c := newAPICheck(t, doc, broker.URL)
	alice, bob := token(t, "alice"), token(t, "bob@example.com")

	// Operations.
	c.get("/healthz", "", docValid, 200, "")
	c.get("/readyz", "", docValid, 200, "")
	metrics := c.get("/metrics", "", docValid, 200, "")
	if !bytes.Contains(metrics.Raw, []byte("# TYPE ")) {
		t.Errorf("/metrics is not in the Prometheus text format: %.300s", metrics.Raw)
	}
	served := c.get("/openapi.yaml", "", docValid, 200, "")
	if !bytes.Equal(served.Raw, rawDoc) {
		t.Errorf("GET /openapi.yaml (%d bytes) differs from docs/openapi.yaml (%d bytes)", len(served.Raw), len(rawDoc))
	}
	// The demo page is served by serve too; the user pastes a token.
	c.get("/", "", docValid, 200, "")

	// Signatures.
	c.get("/generate-signature", "", docInvalid, 401, "unauthorized")
	c.get("/generate-signature", "not-a-jwt", docSilent, 401, "unauthorized")
	c.get("/generate-signature?provider=dropbox", alice, docInvalid, 400, "invalid_request")
	c.get("/generate-signature?resource_type=pdf", alice, docInvalid, 400, "invalid_request")
	if r := c.get("/generate-signature", alice, docValid, 200, ""); r.Body["provider"] != "cloudinary" {
		t.Errorf("default provider: %s", r.Raw)
	}
	ucSig := c.get("/generate-signature?provider=uploadcare", alice, docValid, 200, "")
	if ucSig.Body["provider"] != "uploadcare" {
		t.Fatalf("uploadcare signature: %s", ucSig.Raw)
	}
	cloudinarySig := func() map[string]any {
		r := c.get("/generate-signature?provider=cloudinary&resource_type=image", alice, docValid, 200, "")
		if r.Body["provider"] != "cloudinary" {
			t.Fatalf("cloudinary signature: %s", r.Raw)
		}
		return r.Body
	}

	// Cloudinary saves: the whole answer (201, then 200), the seed guide's
	// three fields (Admin API proof), refusals.
	c1 := oaUploadToProvider(t, cloudinarySig())
	first := c.json("POST", "/save-metadata", alice, oaMustJSON(t, c1), docValid, 201, "")
	c1ID, _ := first.file()["id"].(string)
	if again := c.json("POST", "/save-metadata", alice, oaMustJSON(t, c1), docValid, 200, ""); again.file()["id"] != c1ID {
		t.Errorf("second save gave another record: %s", again.Raw)
	}
	c.json("POST", "/save-metadata", bob, oaMustJSON(t, c1), docSilent, 403, "forbidden")
	c.json("POST", "/save-metadata", "", oaMustJSON(t, c1), docInvalid, 401, "unauthorized")

	c2 := oaUploadToProvider(t, cloudinarySig())
	three := map[string]any{"public_id": c2["public_id"], "secure_url": c2["secure_url"], "resource_type": c2["resource_type"]}
	c.json("POST", "/save-metadata", alice, oaMustJSON(t, three), docValid, 201, "")

	c3 := oaUploadToProvider(t, cloudinarySig())
	forged := map[string]any{}
	for k, v := range c3 {
		forged[k] = v
	}
	forged["signature"] = strings.Repeat("0", 40)
	c.json("POST", "/save-metadata", alice, oaMustJSON(t, forged), docSilent, 422, "invalid_evidence")
	missing := map[string]any{"public_id": c3["public_id"].(string) + "-nope", "secure_url": c3["secure_url"], "resource_type": "image"}
	c.json("POST", "/save-metadata", alice, oaMustJSON(t, missing), docSilent, 422, "upload_not_found")
	// A record of the same asset owned by someone else (a row imported
	// from a guide's table) makes alice's save a conflict.
	oaInsertLegacyRow(t, env["DATABASE_URL"], c3["public_id"].(string), c3["secure_url"].(string))
	c.json("POST", "/save-metadata", alice, oaMustJSON(t, c3), docValid, 409, "conflict")

	c.json("POST", "/save-metadata", alice, `{"public_id":`, docInvalid, 400, "invalid_request")
	c.json("POST", "/save-metadata", alice, `{}`, docInvalid, 400, "invalid_request")
	c.json("POST", "/save-metadata", alice, `{"public_id": 42}`, docInvalid, 400, "invalid_request")
	c.json("POST", "/save-metadata", alice, `{"public_id":"x","pad":"`+strings.Repeat("a", 1<<20)+`"}`, docSilent, 413, "payload_too_large")

	// Uploadcare: a direct upload saved by its UUID, again by file_id, the
	// guide's server-side upload, refusals.
	params := map[string]string{}
	for k, v := range ucSig.Body["params"].(map[string]any) {
		params[k] = v.(string)
	}
	uuid, _ := oaUploadToProvider(t, ucSig.Body)["file"].(string)
	u1 := c.json("POST", "/save-metadata", alice, fmt.Sprintf(`{"provider":"uploadcare","uuid":%q}`, uuid), docValid, 201, "")
	u1ID, _ := u1.file()["id"].(string)
	if r := c.json("POST", "/save-metadata", alice, fmt.Sprintf(`{"file_id":%q}`, uuid), docValid, 200, ""); r.file()["id"] != u1ID {
		t.Errorf("file_id save gave another record: %s", r.Raw)
	}
	c.json("POST", "/save-metadata", bob, fmt.Sprintf(`{"uuid":%q}`, uuid), docSilent, 403, "forbidden")
	c.json("POST", "/save-metadata", alice, `{"provider":"uploadcare","uuid":"00000000-0000-4000-8000-000000000000"}`, docValid, 422, "upload_not_found")
	c.json("POST", "/save-metadata", alice, `{"provider":"uploadcare"}`, docInvalid, 400, "invalid_request")
	c.json("POST", "/save-metadata", alice, `{"provider":"dropbox","uuid":"00000000-0000-4000-8000-000000000000"}`, docInvalid, 400, "invalid_request")

	form, ct := oaMultipart(t, [][2]string{{"fileName", "dog.png"}}, "ignored.png", oaPNG)
	up := c.do(oaExchange{method: "POST", path: "/upload", token: alice, contentType: ct, body: form, rule: docValid, want: 201})
	if up.Body["fileUrl"] != up.file()["url"] || up.file()["original_filename"] != "dog.png" {
		t.Errorf("upload answer: %s", up.Raw)
	}
	noFile, ct := oaMultipart(t, [][2]string{{"fileName", "x.png"}}, "", nil)
	c.do(oaExchange{method: "POST", path: "/upload", token: alice, contentType: ct, body: noFile, rule: docInvalid, want: 400, code: "invalid_request"})
	big, ct := oaMultipart(t, nil, "big.bin", bytes.Repeat([]byte{7}, 3*oaUploadLimit))
	c.do(oaExchange{method: "POST", path: "/upload", token: alice, contentType: ct, body: big, rule: docSilent, want: 413, code: "payload_too_large"})

	// The list, two pages through the cursor: alice has c1, c2, u1 and the
	// upload; bob has nothing.
	p1 := c.get("/files?limit=3", alice, docValid, 200, "")
	cursor, _ := p1.Body["next_cursor"].(string)
	if cursor == "" {
		t.Fatalf("first page has no next_cursor: %s", p1.Raw)
	}
	p2 := c.get("/files?limit=3&cursor="+url.QueryEscape(cursor), alice, docValid, 200, "")
	if p2.Body["next_cursor"] != nil {
		t.Errorf("last page has a next_cursor: %s", p2.Raw)
	}
	ids := map[string]bool{}
	for _, page := range []oaAnswer{p1, p2} {
		files, _ := page.Body["files"].([]any)
		for _, f := range files {
			ids[f.(map[string]any)["id"].(string)] = true
		}
	}
	if len(ids) != 4 || !ids[c1ID] || !ids[u1ID] {
		t.Errorf("pages hold %d distinct files, want alice's 4: %v", len(ids), ids)
	}
	if r := c.get("/files?provider=uploadcare&resource_type=image", alice, docValid, 200, ""); len(r.Body["files"].([]any)) != 2 {
		t.Errorf("alice's Uploadcare images: %s", r.Raw)
	}
	if r := c.get("/files", bob, docValid, 200, ""); len(r.Body["files"].([]any)) != 0 {
		t.Errorf("bob's files: %s", r.Raw)
	}
	c.get("/files?limit=0", alice, docInvalid, 400, "invalid_request")
	c.get("/files?limit=101", alice, docInvalid, 400, "invalid_request")
	c.get("/files?provider=dropbox", alice, docInvalid, 400, "invalid_request")
	c.get("/files?cursor=not-a-cursor", alice, docSilent, 400, "invalid_request")
	c.get("/files", "", docInvalid, 401, "unauthorized")

	// One file; others' and unknown ones are 404.
	c.get("/files/"+c1ID, alice, docValid, 200, "")
	c.get("/files/"+c1ID, bob, docSilent, 404, "not_found")
	c.get("/files/00000000-0000-4000-8000-000000000000", alice, docValid, 404, "not_found")

	// Delete at the provider, then the record.
	del := func(id, tok string, rule requestRule, want int, code string) {
		t.Helper()
		c.do(oaExchange{method: "DELETE", path: "/files/" + id, token: tok, rule: rule, want: want, code: code})
	}
	del(c1ID, bob, docSilent, 404, "not_found")
	del(c1ID, alice, docValid, 200, "")
	del(c1ID, alice, docValid, 404, "not_found")
	del(u1ID, alice, docValid, 200, "")
	del(u1ID, "", docInvalid, 401, "unauthorized")
	c.get("/files/"+u1ID, alice, docValid, 404, "not_found")

	// Webhooks: notifications whose signature does not verify are refused.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	c.do(oaExchange{
		method: "POST", path: "/webhooks/cloudinary", contentType: "application/json",
		header: map[string]string{"X-Cld-Signature": strings.Repeat("0", 40), "X-Cld-Timestamp": ts},
		body:   []byte(oaMustJSON(t, map[string]any{"notification_type": "upload", "public_id": c2["public_id"], "version": c2["version"]})),
		rule:   docValid, want: 401, code: "unauthorized",
	})
	c.do(oaExchange{
		method: "POST", path: "/webhooks/uploadcare", contentType: "application/json",
		header: map[string]string{"X-Uc-Signature": "v1=" + strings.Repeat("0", 64)},
		body:   []byte(oaMustJSON(t, map[string]any{"hook": map[string]any{"event": "file.uploaded"}, "data": map[string]any{"uuid": uuid}, "file": "x"})),
		rule:   docValid, want: 401, code: "unauthorized",
	})

	// Signed notifications: an upload recorded by the webhook (201), the
	// same delivery again (200 repeat), then the provider's delete (200).
	c5 := oaUploadToProvider(t, cloudinarySig())
	c5["notification_type"] = "upload"
	cldNote := func(body []byte, want int, outcome string) {
		t.Helper()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		r := c.do(oaExchange{
			method: "POST", path: "/webhooks/cloudinary", contentType: "application/json", body: body, rule: docValid, want: want,
			header: map[string]string{"X-Cld-Timestamp": ts, "X-Cld-Signature": signer.SignCloudinaryNotification(body, ts, oaCloudinarySecret, signer.SHA1)},
		})
		if r.Body["outcome"] != outcome {
			t.Errorf("cloudinary notification: outcome %v, want %s: %s", r.Body["outcome"], outcome, r.Raw)
		}
	}
	uploaded := []byte(oaMustJSON(t, c5))
	cldNote(uploaded, 201, "created")
	cldNote(uploaded, 200, "repeat")
	cldNote([]byte(oaMustJSON(t, map[string]any{"notification_type": "delete", "resources": []any{
		map[string]any{"resource_type": "image", "type": "upload", "public_id": c5["public_id"]},
	}})), 200, "deleted")

	ucSig2 := c.get("/generate-signature?provider=uploadcare", alice, docValid, 200, "")
	uuid2, _ := oaUploadToProvider(t, ucSig2.Body)["file"].(string)
	intent := ucSig2.Body["params"].(map[string]any)["metadata[broker_intent]"]
	ucNote := func(event string, metadata map[string]any, want int, outcome string) {
		t.Helper()
		body := []byte(oaMustJSON(t, map[string]any{
			"hook": map[string]any{"event": event, "project_pub_key": oaUCPublicKey},
			"data": map[string]any{"uuid": uuid2, "metadata": metadata},
		}))
		r := c.do(oaExchange{
			method: "POST", path: "/webhooks/uploadcare", contentType: "application/json", body: body, rule: docValid, want: want,
			header: map[string]string{"X-Uc-Signature": signer.SignUploadcareWebhook(oaUCWebhookSecret, body)},
		})
		if r.Body["outcome"] != outcome {
			t.Errorf("uploadcare %s: outcome %v, want %s: %s", event, r.Body["outcome"], outcome, r.Raw)
		}
	}
	ucNote("file.uploaded", map[string]any{"broker_intent": intent}, 201, "created")
	ucNote("file.uploaded", map[string]any{"broker_intent": intent}, 200, "repeat")
	ucNote("file.deleted", nil, 200, "deleted")

	// Over RATE_LIMIT_PER_MINUTE: 429 with Retry-After, on a second broker
	// of the same stack with a limit of one a minute.
	limitedEnv := map[string]string{}
	for k, v := range env {
		limitedEnv[k] = v
	}
	limitedEnv["RATE_LIMIT_PER_MINUTE"] = "1"
	limited := newAPICheck(t, doc, start(t, limitedEnv, "serve").URL)
	limited.get("/generate-signature", alice, docValid, 200, "")
	limited.get("/generate-signature", alice, docValid, 429, "rate_limited")
	for k, n := range limited.seen {
		c.seen[k] += n
	}

	// Every operation of the document was exercised and answered as it says.
	done := map[string]bool{}
	for k := range c.seen {
		done[strings.Fields(k)[0]] = true
	}
	for _, op := range c.ops {
		if !done[op] {
			t.Errorf("operation %s of docs/openapi.yaml was not exercised with a valid answer", op)
		}
	}
	if t.Failed() {
		t.Logf("validated answers: %v\nbroker log:\n%s", c.seen, broker.Output())
	}
}

// oaInsertLegacyRow records a Cloudinary asset for another user straight in
// the database (as `broker migrate` imports a guide's table), bypassing the
// broker: the test database's URL is the cluster's superuser.
func oaInsertLegacyRow(t *testing.T, dbURL, publicID, secureURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx,
		`INSERT INTO files (provider, provider_id, url, resource_type, user_id) VALUES ('cloudinary', $1, $2, 'image', 'legacy-owner')`,
		publicID, secureURL); err != nil {
		t.Fatal(err)
	}
}
