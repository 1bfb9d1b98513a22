package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/brokerdev/broker/internal/testdb"
)

// badCase is one hostile or broken request and the contract's answer to it.
type badCase struct {
	name   string
	method string
	path   string
	token  string   // sent as "Bearer <token>" unless empty
	header []string // extra name, value pairs (may replace Authorization)
	body   []byte
	ctype  string // Content-Type, when a body is sent
	status int
	code   string // the stable code; "" only where net/http answers before the broker
}

// signToken signs claims with key (HS256) or leaves them unsigned (alg none).
func signToken(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(sub any, exp time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(exp).Unix()}
}

// multipartWith builds a form from parts: name, filename ("" for a plain
// field), content.
func multipartWith(parts ...[3]string) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p[1] == "" {
			_ = mw.WriteField(p[0], p[2])
			continue
		}
		w, _ := mw.CreateFormFile(p[0], p[1])
		_, _ = io.WriteString(w, p[2])
	}
	_ = mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// TestBadInputCorpus sends a table of hostile and broken requests to every
// endpoint of the compiled broker. Each must get the contract's 4xx and
// stable code (never 500), nothing may change in the database, and the
// process must still be up at the end.
func TestBadInputCorpus(t *testing.T) {
	began := time.Now()
	dbURL := testdb.PostgresURL(t)
	t.Logf("database after %s", time.Since(began))
	e := startEmulator(t)
	env := brokerEnv(dbURL, e)
	env["UPLOAD_MAX_BYTES"] = "65536"
	b := startBroker(t, env)
	view := openView(t, dbURL)
	c := newClient(t, 30*time.Second, true)
	t.Logf("broker up after %s", time.Since(began))

	alice, bob := token(t, "alice"), token(t, "bob")

	// What the refused requests try to reach: alice's saved files, a fresh
	// upload of hers nobody saved, and bob's Uploadcare file.
	saved, err := postJSON(c, b.URL+"/save-metadata", alice, mustUploadCloudinary(t, b.URL, alice))
	if err != nil || saved.Status != http.StatusCreated {
		t.Fatalf("setup save: %v %v", saved, err)
	}
	aliceFile := saved.Body["file"].(map[string]any)["id"].(string)
	if r, err := postJSON(c, b.URL+"/save-metadata", alice, fmt.Sprintf(`{"uuid":%q}`, mustUploadUploadcare(t, b.URL, alice))); err != nil || r.Status != http.StatusCreated {
		t.Fatalf("setup Uploadcare save: %v %v", r, err)
	}
	fresh := mustUploadCloudinary(t, b.URL, alice)
	freshID := field(fresh, "public_id")
	bobUUID := mustUploadUploadcare(t, b.URL, bob)
	before := view.snapshot(t)

	// Tokens that must all be refused.
	other := []byte("not-the-broker-secret-not-the-broker-secret")
	noneTok := signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("alice", time.Hour))
	otherTok := signToken(t, jwt.SigningMethodHS256, other, claimsFor("alice", time.Hour))
	expired := signToken(t, jwt.SigningMethodHS256, []byte(jwtSecret), claimsFor("alice", -time.Hour))
	ctrlSub := signToken(t, jwt.SigningMethodHS256, []byte(jwtSecret), claimsFor("ali\x00ce\n", time.Hour))
	emptySub := signToken(t, jwt.SigningMethodHS256, []byte(jwtSecret), claimsFor("", time.Hour))
	longSub := signToken(t, jwt.SigningMethodHS256, []byte(jwtSecret), claimsFor(strings.Repeat("a", 4096), time.Hour))
	objSub := signToken(t, jwt.SigningMethodHS256, []byte(jwtSecret), claimsFor(map[string]any{"$ne": ""}, time.Hour))
	noExp := signToken(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "alice"})
	ap, bp := strings.Split(alice, "."), strings.Split(bob, ".")
	swapped := ap[0] + "." + bp[1] + "." + ap[2] // bob's claims under alice's signature
	truncated := alice[:len(alice)-10]
	reSigned := ap[0] + "." + ap[1] + "." + strings.Repeat("A", len(ap[2]))

	const sqlInjection = `' OR '1'='1'; DROP TABLE files; --`
	const pathInjection = "../../../../etc/passwd"
	js := func(s string) []byte { return []byte(s) }
	jsonCT := "application/json"
	q := url.QueryEscape
	nested := strings.Repeat("[", 200_000) + strings.Repeat("]", 200_000)
	tooBig := `{"public_id":"` + strings.Repeat("x", 2<<20) + `"}`
	hugeHeader := strings.Repeat("h", 128<<10)
	twoFiles, twoFilesCT := multipartWith([3]string{"file", "a.png", string(pngBytes)}, [3]string{"file", "b.png", string(pngBytes)})
	noFile, noFileCT := multipartWith([3]string{"fileName", "", "cat.png"})
	wrongName, wrongNameCT := multipartWith([3]string{"upload", "a.png", string(pngBytes)})
	bigFile, bigFileCT := multipartWith([3]string{"file", "big.bin", strings.Repeat("z", 100<<10)})
	cut := twoFiles[:bytes.Index(twoFiles, pngBytes)+20] // inside the first file

	cases := []badCase{
		// --- tokens, on every authenticated endpoint ---
		{name: "no token: signature", method: "GET", path: "/generate-signature", status: 401, code: "unauthorized"},
		{name: "no token: save", method: "POST", path: "/save-metadata", body: js(`{}`), ctype: jsonCT, status: 401, code: "unauthorized"},
		{name: "no token: list", method: "GET", path: "/files", status: 401, code: "unauthorized"},
		{name: "no token: get", method: "GET", path: "/files/" + aliceFile, status: 401, code: "unauthorized"},
		{name: "no token: delete", method: "DELETE", path: "/files/" + aliceFile, status: 401, code: "unauthorized"},
		{name: "no token: upload", method: "POST", path: "/upload", body: noFile, ctype: noFileCT, status: 401, code: "unauthorized"},
		{name: "empty bearer", method: "GET", path: "/files", header: []string{"Authorization", "Bearer "}, status: 401, code: "unauthorized"},
		{name: "basic scheme", method: "GET", path: "/files", header: []string{"Authorization", "Basic YWxpY2U6c2VjcmV0"}, status: 401, code: "unauthorized"},
		{name: "garbage token", method: "GET", path: "/files", token: "garbage", status: 401, code: "unauthorized"},
		{name: "SQL in token", method: "GET", path: "/files", token: sqlInjection, status: 401, code: "unauthorized"},
		{name: "alg none", method: "GET", path: "/files", token: noneTok, status: 401, code: "unauthorized"},
		{name: "other secret", method: "DELETE", path: "/files/" + aliceFile, token: otherTok, status: 401, code: "unauthorized"},
		{name: "expired", method: "GET", path: "/files", token: expired, status: 401, code: "unauthorized"},
		{name: "no exp", method: "GET", path: "/files", token: noExp, status: 401, code: "unauthorized"},
		{name: "control chars in sub", method: "GET", path: "/files", token: ctrlSub, status: 401, code: "unauthorized"},
		{name: "empty sub", method: "GET", path: "/files", token: emptySub, status: 401, code: "unauthorized"},
		{name: "4 KiB sub", method: "GET", path: "/generate-signature", token: longSub, status: 401, code: "unauthorized"},
		{name: "object sub (NoSQL-style)", method: "GET", path: "/files", token: objSub, status: 401, code: "unauthorized"},
		{name: "claims swapped under a valid signature", method: "GET", path: "/files", token: swapped, status: 401, code: "unauthorized"},
		{name: "truncated signature", method: "GET", path: "/files", token: truncated, status: 401, code: "unauthorized"},
		{name: "zeroed signature", method: "DELETE", path: "/files/" + aliceFile, token: reSigned, status: 401, code: "unauthorized"},
		{name: "20 KiB token", method: "GET", path: "/files", token: strings.Repeat("a.", 10<<10) + "a", status: 401, code: "unauthorized"},
		{name: "unicode token", method: "GET", path: "/files", header: []string{"Authorization", "Bearer \u202eeyJ.\u2028.😀"}, status: 401, code: "unauthorized"},
		// net/http refuses a header block over the server's MaxHeaderBytes
		// before the broker sees the request: 431, plain text.
		{name: "128 KiB header", method: "GET", path: "/files", token: alice, header: []string{"X-Padding", hugeHeader}, status: 431},

		// --- GET /generate-signature ---
		{name: "unknown provider", method: "GET", path: "/generate-signature?provider=imgur", token: alice, status: 400, code: "invalid_request"},
		{name: "SQL in provider", method: "GET", path: "/generate-signature?provider=" + q(sqlInjection), token: alice, status: 400, code: "invalid_request"},
		{name: "homoglyph provider", method: "GET", path: "/generate-signature?provider=" + q("clоudinary"), token: alice, status: 400, code: "invalid_request"},
		{name: "path in resource_type", method: "GET", path: "/generate-signature?resource_type=" + q(pathInjection), token: alice, status: 400, code: "invalid_request"},
		{name: "NUL in resource_type", method: "GET", path: "/generate-signature?resource_type=%00", token: alice, status: 400, code: "invalid_request"},
		{name: "bad resource_type for Uploadcare", method: "GET", path: "/generate-signature?provider=uploadcare&resource_type=pdf", token: alice, status: 400, code: "invalid_request"},
		{name: "POST to generate-signature", method: "POST", path: "/generate-signature", token: alice, body: js(`{}`), ctype: jsonCT, status: 405, code: "invalid_request"},

		// --- POST /save-metadata: the body's shape ---
		{name: "empty body", method: "POST", path: "/save-metadata", token: alice, ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "whitespace body", method: "POST", path: "/save-metadata", token: alice, body: js(" \n\t "), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "null", method: "POST", path: "/save-metadata", token: alice, body: js("null"), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "array", method: "POST", path: "/save-metadata", token: alice, body: js(`["public_id"]`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "string", method: "POST", path: "/save-metadata", token: alice, body: js(`"uploads/alice/x"`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "number", method: "POST", path: "/save-metadata", token: alice, body: js(`42`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "truncated JSON", method: "POST", path: "/save-metadata", token: alice, body: []byte(fresh[:len(fresh)/2]), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "unquoted keys", method: "POST", path: "/save-metadata", token: alice, body: js(`{public_id: "x"}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "trailing data", method: "POST", path: "/save-metadata", token: alice, body: js(fresh + `{"x":1}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "byte order mark", method: "POST", path: "/save-metadata", token: alice, body: append([]byte("\xef\xbb\xbf"), fresh...), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "raw newline in a string", method: "POST", path: "/save-metadata", token: alice, body: js("{\"public_id\":\"uploads/alice/a\nb\"}"), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "200k nested arrays", method: "POST", path: "/save-metadata", token: alice, body: js(nested), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "2 MiB body", method: "POST", path: "/save-metadata", token: alice, body: js(tooBig), ctype: jsonCT, status: 413, code: "payload_too_large"},
		{name: "text/plain", method: "POST", path: "/save-metadata", token: alice, body: js(fresh), ctype: "text/plain", status: 400, code: "invalid_request"},
		{name: "form-urlencoded", method: "POST", path: "/save-metadata", token: alice, body: js("public_id=" + q(freshID)), ctype: "application/x-www-form-urlencoded", status: 400, code: "invalid_request"},
		{name: "multipart to save", method: "POST", path: "/save-metadata", token: alice, body: noFile, ctype: noFileCT, status: 400, code: "invalid_request"},
		{name: "unparsable Content-Type", method: "POST", path: "/save-metadata", token: alice, body: js(fresh), ctype: ";;;/", status: 400, code: "invalid_request"},

		// --- POST /save-metadata: wrong types ---
		{name: "public_id number", method: "POST", path: "/save-metadata", token: alice, body: js(`{"public_id":42}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "public_id array", method: "POST", path: "/save-metadata", token: alice, body: js(`{"public_id":["uploads/alice/x"]}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "public_id object", method: "POST", path: "/save-metadata", token: alice, body: js(`{"public_id":{"$gt":""}}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "public_id null", method: "POST", path: "/save-metadata", token: alice, body: js(`{"public_id":null}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "version string", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "version", "1"), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "version fraction", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "version", 1.5), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "version 1e400", method: "POST", path: "/save-metadata", token: alice, body: js(strings.Replace(fresh, `"version":`, `"version":1e400,"v":`, 1)), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "version negative", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "version", -5), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "bytes negative", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "bytes", -1), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "width string", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "width", "wide"), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "provider number", method: "POST", path: "/save-metadata", token: alice, body: js(`{"provider":1,"public_id":"x"}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "unknown provider", method: "POST", path: "/save-metadata", token: alice, body: js(`{"provider":"imgur","public_id":"x"}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "no identifying field", method: "POST", path: "/save-metadata", token: alice, body: js(`{"secure_url":"https://x"}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "resource_type number", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "resource_type", 7), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "uuid number", method: "POST", path: "/save-metadata", token: alice, body: js(`{"uuid":12345}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "file_id object", method: "POST", path: "/save-metadata", token: alice, body: js(`{"file_id":{}}`), ctype: jsonCT, status: 400, code: "invalid_request"},

		// --- POST /save-metadata: injection strings in every field ---
		{name: "SQL in public_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", "uploads/alice/"+sqlInjection, "resource_type", "image"), ctype: jsonCT, status: 422, code: "upload_not_found"},
		{name: "URL-encoded SQL in public_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", "uploads/alice/x%27%20OR%201%3D1"), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "path in public_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", pathInjection), ctype: jsonCT, status: 403, code: "forbidden"},
		{name: "dot segments in own prefix", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", "uploads/alice/../bob/x"), ctype: jsonCT, status: 422, code: "upload_not_found"},
		{name: "NUL in public_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", "uploads/alice/a\x00b"), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "RTL override and emoji public_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", "uploads/alice/\u202egnp.exe😀"), ctype: jsonCT, status: 422, code: "upload_not_found"},
		{name: "lone surrogate public_id", method: "POST", path: "/save-metadata", token: alice, body: js(`{"public_id":"uploads/alice/\ud800"}`), ctype: jsonCT, status: 422, code: "upload_not_found"},
		{name: "invalid UTF-8 public_id", method: "POST", path: "/save-metadata", token: alice, body: []byte("{\"public_id\":\"uploads/alice/\xff\xfe\"}"), ctype: jsonCT, status: 422, code: "upload_not_found"},
		{name: "300-byte public_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("public_id", "uploads/alice/"+strings.Repeat("p", 300)), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "SQL in resource_type", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "resource_type", sqlInjection), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "SQL in type", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "type", sqlInjection), ctype: jsonCT, status: 422, code: "invalid_evidence"},
		{name: "SQL in format", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "format", sqlInjection), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "javascript: secure_url", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "secure_url", "javascript:alert(1)"), ctype: jsonCT, status: 422, code: "invalid_evidence"},
		{name: "300-byte original_filename", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "original_filename", strings.Repeat("f", 300)), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "SQL in uuid", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("uuid", sqlInjection), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "path in file_id", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("file_id", pathInjection), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "uuid with a path tail", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("file", bobUUID[:30]+"/../x"), ctype: jsonCT, status: 400, code: "invalid_request"},

		// --- POST /save-metadata: forged and mangled proof ---
		{name: "forged response signature", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "signature", strings.Repeat("0", 40)), ctype: jsonCT, status: 422, code: "invalid_evidence"},
		{name: "non-hex response signature", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "signature", "zz'--"+strings.Repeat("\u00e9", 20)), ctype: jsonCT, status: 422, code: "invalid_evidence"},
		{name: "version bumped under the same signature", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "version", 9999999999), ctype: jsonCT, status: 422, code: "invalid_evidence"},
		{name: "signature without version", method: "POST", path: "/save-metadata", token: alice, body: patchJSON(t, fresh, "version", nil), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "another user's upload", method: "POST", path: "/save-metadata", token: bob, body: js(fresh), ctype: jsonCT, status: 403, code: "forbidden"},
		{name: "another user's Uploadcare file", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("uuid", bobUUID), ctype: jsonCT, status: 403, code: "forbidden"},
		{name: "Uploadcare file that does not exist", method: "POST", path: "/save-metadata", token: alice, body: jsonObj("uuid", "00000000-0000-4000-8000-000000000000"), ctype: jsonCT, status: 422, code: "upload_not_found"},

		// --- GET /files and /files/{id} ---
		{name: "limit 0", method: "GET", path: "/files?limit=0", token: alice, status: 400, code: "invalid_request"},
		{name: "limit 101", method: "GET", path: "/files?limit=101", token: alice, status: 400, code: "invalid_request"},
		{name: "limit overflow", method: "GET", path: "/files?limit=99999999999999999999999", token: alice, status: 400, code: "invalid_request"},
		{name: "limit 1e1", method: "GET", path: "/files?limit=1e1", token: alice, status: 400, code: "invalid_request"},
		{name: "SQL in limit", method: "GET", path: "/files?limit=" + q("1; DROP TABLE files"), token: alice, status: 400, code: "invalid_request"},
		{name: "garbage cursor", method: "GET", path: "/files?cursor=garbage", token: alice, status: 400, code: "invalid_request"},
		{name: "SQL in cursor", method: "GET", path: "/files?cursor=" + q(sqlInjection), token: alice, status: 400, code: "invalid_request"},
		{name: "SQL in provider filter", method: "GET", path: "/files?provider=" + q(sqlInjection), token: alice, status: 400, code: "invalid_request"},
		{name: "markup in resource_type filter", method: "GET", path: "/files?resource_type=" + q("<script>alert(1)</script>"), token: alice, status: 400, code: "invalid_request"},
		{name: "id not a UUID", method: "GET", path: "/files/not-a-uuid", token: alice, status: 404, code: "not_found"},
		{name: "SQL in id", method: "GET", path: "/files/" + url.PathEscape(sqlInjection), token: alice, status: 404, code: "not_found"},
		{name: "NUL in id", method: "GET", path: "/files/%00", token: alice, status: 404, code: "not_found"},
		{name: "encoded path in id", method: "DELETE", path: "/files/" + url.PathEscape(pathInjection), token: alice, status: 404, code: "not_found"},
		{name: "another user's file", method: "GET", path: "/files/" + aliceFile, token: bob, status: 404, code: "not_found"},
		{name: "delete another user's file", method: "DELETE", path: "/files/" + aliceFile, token: bob, status: 404, code: "not_found"},
		{name: "PUT a file", method: "PUT", path: "/files/" + aliceFile, token: alice, body: js(`{}`), ctype: jsonCT, status: 405, code: "invalid_request"},
		{name: "unknown endpoint", method: "GET", path: "/admin/files", token: alice, status: 404, code: "not_found"},
		{name: "dot segments to another path", method: "GET", path: "/files/../../etc/passwd", token: alice, status: 404, code: "not_found"},

		// --- POST /upload ---
		{name: "upload without Content-Type", method: "POST", path: "/upload", token: alice, body: js("abc"), status: 400, code: "invalid_request"},
		{name: "upload as JSON", method: "POST", path: "/upload", token: alice, body: js(`{"file":"x"}`), ctype: jsonCT, status: 400, code: "invalid_request"},
		{name: "multipart without boundary", method: "POST", path: "/upload", token: alice, body: twoFiles, ctype: "multipart/form-data", status: 400, code: "invalid_request"},
		{name: "multipart without a file", method: "POST", path: "/upload", token: alice, body: noFile, ctype: noFileCT, status: 400, code: "invalid_request"},
		{name: "file part under another name", method: "POST", path: "/upload", token: alice, body: wrongName, ctype: wrongNameCT, status: 400, code: "invalid_request"},
		{name: "multipart with two files", method: "POST", path: "/upload", token: alice, body: twoFiles, ctype: twoFilesCT, status: 400, code: "invalid_request"},
		{name: "truncated multipart", method: "POST", path: "/upload", token: alice, body: cut, ctype: twoFilesCT, status: 400, code: "invalid_request"},
		{name: "file over UPLOAD_MAX_BYTES", method: "POST", path: "/upload", token: alice, body: bigFile, ctype: bigFileCT, status: 413, code: "payload_too_large"},
		{name: "empty multipart body", method: "POST", path: "/upload", token: alice, ctype: twoFilesCT, status: 400, code: "invalid_request"},
	}
	cases = append(cases, webhookBadCases(t)...)

	if len(cases) < 60 {
		t.Fatalf("the corpus has %d cases, want at least 60", len(cases))
	}
	for _, tc := range cases {
		var body io.Reader
		if tc.body != nil {
			body = bytes.NewReader(tc.body)
		}
		req := newRequest(tc.method, b.URL+tc.path, tc.token, body)
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		for i := 0; i+1 < len(tc.header); i += 2 {
			req.Header.Set(tc.header[i], tc.header[i+1])
		}
		began := time.Now()
		r, err := send(c, req)
		if d := time.Since(began); d > time.Second {
			t.Logf("%s took %s", tc.name, d.Round(time.Millisecond))
		}
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
			continue
		case r.Status >= 500:
			t.Errorf("%s: server error %s", tc.name, r)
			continue
		case r.Status != tc.status || r.code() != tc.code:
			t.Errorf("%s: got %s, want %d %q", tc.name, r, tc.status, tc.code)
			continue
		}
		if tc.code != "" && (r.Body["success"] != false || r.Body["error"] == "") {
			t.Errorf("%s: body is not the contract's error shape: %s", tc.name, r)
		}
		if tc.code == "unauthorized" && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", tc.name, r.Header.Get("WWW-Authenticate"))
		}
	}

	if after := view.snapshot(t); after != before {
		t.Errorf("the refused requests changed the database: %+v, before %+v", after, before)
	}
	if r, err := get(c, b.URL+"/healthz", ""); err != nil || r.Status != http.StatusOK {
		t.Fatalf("broker is not healthy after the corpus: %v %v\n%s", r, err, b.Output())
	}
	if strings.Contains(b.Output(), `"status":500`) || strings.Contains(b.Output(), `"msg":"panic"`) {
		t.Errorf("the broker logged a 500 or a panic:\n%s", b.Output())
	}
	t.Logf("%d hostile requests refused with their codes; %d rows unchanged", len(cases), before.Rows)

	hostileButValid(t, c, b.URL, view)
	if os.Getenv("RELIABILITY_VERBOSE") != "" {
		t.Log(b.Output())
	}
}

// hostileButValid sends requests that look like attacks but are allowed:
// they must succeed without leaking anything or touching other rows.
func hostileButValid(t *testing.T, c *http.Client, base string, view *dbView) {
	t.Helper()
	// A user id full of SQL and path characters is just a user: it sees
	// nobody's files and its uploads land under its own encoded folder.
	for _, user := range []string{`' OR '1'='1`, "../../bob", "alice\u200b", "%", "*"} {
		tok := token(t, user)
		r, err := get(c, base+"/files", tok)
		if err != nil || r.Status != http.StatusOK {
			t.Errorf("list as %q: %v %v", user, r, err)
			continue
		}
		if files := r.Body["files"].([]any); len(files) != 0 {
			t.Errorf("user %q sees %d files that are not theirs", user, len(files))
		}
	}
	hostile := token(t, `' OR '1'='1`)
	ev := mustUploadCloudinary(t, base, hostile)
	if !strings.HasPrefix(field(ev, "public_id"), "uploads/_") {
		t.Errorf("a user id with SQL characters got public ID %q, not an encoded folder", field(ev, "public_id"))
	}
	r, err := postJSON(c, base+"/save-metadata", hostile, ev)
	if err != nil || r.Status != http.StatusCreated {
		t.Errorf("save as a hostile user id: %v %v", r, err)
	}
	// A fileName with a path keeps only its last element.
	form, ct := multipartWith([3]string{"fileName", "", "../../etc/passwd"}, [3]string{"file", "x.png", string(pngBytes)})
	r, err = send(c, newRequest(http.MethodPost, base+"/upload", token(t, "alice"), bytes.NewReader(form), "Content-Type", ct))
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("upload with a path in fileName: %v %v", r, err)
	}
	if name := r.Body["file"].(map[string]any)["original_filename"]; name != "passwd" {
		t.Errorf("fileName with a path was recorded as %q", name)
	}
	if recs := view.records(t, "cloudinary"); recs[field(ev, "public_id")] != `' OR '1'='1` {
		t.Errorf("hostile user's record: owner %q", recs[field(ev, "public_id")])
	}
}

// patchJSON returns the JSON object raw with name set to value (nil deletes).
func patchJSON(t *testing.T, raw, name string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(m, name)
	} else {
		m[name] = value
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// quoteJSON is s as a JSON string; invalid UTF-8 is kept byte for byte,
// since that is what a hostile client sends.
func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// jsonObj builds a JSON object from name, value pairs with proper escaping.
func jsonObj(kv ...string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteJSON(kv[i]) + ":" + quoteJSON(kv[i+1]))
	}
	b.WriteByte('}')
	return []byte(b.String())
}
