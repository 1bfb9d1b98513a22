package signer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
)

// These targets check the two ends of every signature against each other
// over real HTTP: whatever values the broker signs, the emulator (which
// checks signatures exactly as the provider specs say) must accept the
// upload, and the broker must accept the emulator's signed answer. Run one
// with e.g. `go test -fuzz FuzzEmulatorAcceptsSignedParams -fuzztime 30s ./signer`.

const (
	fzCloud     = "fuzzcloud"
	fzKey       = "123456789012345"
	fzSecret    = "fuzz_api_secret"
	fzUCPublic  = "fuzzpublickey"
	fzUCSecret  = "fuzz-uploadcare-secret"
	fzUserAgent = "broker-fuzz"
)

var fzPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")

// fuzzEmulator serves both providers for the life of the fuzz target.
func fuzzEmulator(f *testing.F) string {
	em, err := emulator.New(emulator.Options{
		Cloudinary:              &emulator.CloudinaryAccount{CloudName: fzCloud, APIKey: fzKey, APISecret: fzSecret},
		Uploadcare:              &emulator.UploadcareProject{PublicKey: fzUCPublic, SecretKey: fzUCSecret, SignedUploads: true},
		NotificationRetryDelays: []time.Duration{},
	})
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(em.Handler())
	f.Cleanup(func() {
		_ = em.Close()
		srv.Close()
	})
	return srv.URL
}

// postForm sends fields and a PNG named file as multipart and returns the
// status and the decoded JSON answer (nil when the answer is not JSON, as
// Uploadcare's plain-text errors are not).
func postForm(t *testing.T, url string, fields map[string]string) (int, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	fw, _ := mw.CreateFormFile("file", "fuzz.png")
	_, _ = fw.Write(fzPNG)
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("User-Agent", fzUserAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		body = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, body
}

// cldErrorMessage reads Cloudinary's {"error":{"message":…}}.
func cldErrorMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// FuzzEmulatorAcceptsSignedParams signs arbitrary values of the upload
// parameters with signer.SignCloudinary and posts them as a browser would.
// The emulator may refuse a value it finds invalid (a public ID with a
// forbidden character, say) but never the signature; and the signed
// upload response it answers with must verify on the broker's side.
func FuzzEmulatorAcceptsSignedParams(f *testing.F) {
	base := fuzzEmulator(f)
	f.Add("uploads/alice/abc", "cats,dogs", "alt=a cat|caption=x=y", "folder/sub", false)
	f.Add("uploads/_mfrgg/x y", "a&b=c", "k=v&w", "", true)
	f.Add("", "tag with spaces, é, 😀", "caption=line1\nline2", "a%26b", false)
	f.Add("p", "\x00\xff\xfe", "=", "&&&", true)
	f.Add("uploads/a/b", "t1,t2", "", "f", true)

	f.Fuzz(func(t *testing.T, publicID, tags, context, folder string, sha256 bool) {
		for _, v := range []string{publicID, tags, context, folder} {
			if !utf8.ValidString(v) {
				// Browsers send form values as UTF-8, and the JSON answer
				// cannot carry other bytes (the emulator would answer with
				// U+FFFD in place of what it signed).
				return
			}
		}
		alg := signer.SHA1
		if sha256 {
			alg = signer.SHA256
		}
		params := map[string]string{
			"timestamp": strconv.FormatInt(time.Now().Unix(), 10),
			"public_id": publicID,
			"tags":      tags,
			"context":   context,
			"folder":    folder,
			"overwrite": "false",
		}
		// The SDKs leave empty parameters out of both the signature and
		// the form; a posted empty field is signed as "name=" by the
		// server, which is a different (and documented) contract.
		for k, v := range params {
			if v == "" {
				delete(params, k)
			}
		}
		fields := map[string]string{"api_key": fzKey, "signature": signer.SignCloudinary(params, fzSecret, alg, 2)}
		for k, v := range params {
			fields[k] = v
		}
		status, body := postForm(t, base+"/cloudinary/v1_1/"+fzCloud+"/auto/upload", fields)
		msg := cldErrorMessage(body)
		switch {
		case status == http.StatusUnauthorized || strings.Contains(msg, "Signature"):
			t.Fatalf("emulator refused the signature over %q: %d %s", signer.CloudinaryStringToSign(params, 2), status, msg)
		case status == http.StatusBadRequest && msg != "":
			return // a value the provider itself refuses
		case status != http.StatusOK:
			t.Fatalf("emulator answered %d %v", status, body)
		}
		gotID, _ := body["public_id"].(string)
		version, _ := body["version"].(float64)
		sig, _ := body["signature"].(string)
		if !signer.VerifyCloudinaryResponse(gotID, int64(version), fzSecret, sig, signer.SHA1) {
			t.Fatalf("the emulator's response signature for %q v%d does not verify", gotID, int64(version))
		}
	})
}

// fuzzBroker is the broker's signing and proving use cases, talking to the
// emulator at base.
func fuzzBroker(base string) (*metadata.Cloudinary, *metadata.Uploadcare) {
	hc := &http.Client{Timeout: 10 * time.Second}
	cldClient := &cloudinary.Client{
		CloudName: fzCloud, APIKey: fzKey, APISecret: fzSecret,
		UploadPrefix: base + "/cloudinary", DeliveryURL: base + "/cloudinary", Algorithm: signer.SHA1, HTTP: hc,
	}
	cld := metadata.NewCloudinary(metadata.CloudinarySettings{
		CloudName: fzCloud, APIKey: fzKey, APISecret: fzSecret, UploadPrefix: base + "/cloudinary",
		Folder: "uploads", Algorithm: signer.SHA1, TTL: 30 * time.Minute,
	}, cldClient)
	ucClient := &uploadcare.Client{
		PublicKey: fzUCPublic, SecretKey: fzUCSecret, HTTP: hc,
		UploadURL: base + "/uploadcare/upload", APIURL: base + "/uploadcare/api", CDNURL: base + "/uploadcare/cdn",
	}
	uc := metadata.NewUploadcare(metadata.UploadcareSettings{
		PublicKey: fzUCPublic, SecretKey: fzUCSecret, UploadURL: base + "/uploadcare/upload", TTL: 30 * time.Minute,
	}, ucClient)
	return cld, uc
}

// FuzzBrokerSignaturesUpload takes any user id the broker accepts, signs
// an upload for it exactly as GET /generate-signature does, uploads with
// exactly the returned fields, and proves the upload as POST
// /save-metadata does. Every step must succeed, and the proven record must
// belong to that user: the user id is the one value a client controls in
// what the broker signs.
func FuzzBrokerSignaturesUpload(f *testing.F) {
	base := fuzzEmulator(f)
	cld, uc := fuzzBroker(base)
	for _, user := range []string{"alice", "bob@example.com", "' OR '1'='1", "../../etc/passwd", "ünïcødé 😀", "a&b=c", "user?x#y%20", strings.Repeat("z", 128), "_mfrgg", "-"} {
		f.Add(user, uint8(0))
	}
	resourceTypes := []string{"auto", "image", "raw"}

	f.Fuzz(func(t *testing.T, user string, rt uint8) {
		if auth.CheckUserID(user) != nil {
			return // the broker refuses the token before it signs anything
		}
		ctx := context.Background()
		resourceType := resourceTypes[int(rt)%len(resourceTypes)]

		sig, err := cld.Sign(user, resourceType)
		if err != nil {
			t.Fatalf("Cloudinary sign for %q: %v", user, err)
		}
		fields := map[string]string{"api_key": sig.APIKey, "signature": sig.Signature}
		for k, v := range sig.Params {
			fields[k] = v
		}
		status, body := postForm(t, sig.UploadURL, fields)
		if status != http.StatusOK {
			t.Fatalf("emulator refused the broker's Cloudinary signature for user %q: %d %v", user, status, body)
		}
		var ev metadata.CloudinaryEvidence
		raw, _ := json.Marshal(body)
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		file, err := cld.Prove(ctx, user, ev)
		if err != nil || file.UserID != user || file.ProviderID != sig.Params["public_id"] {
			t.Fatalf("broker did not prove its own signed Cloudinary upload for %q: %+v %v", user, file, err)
		}

		usig, err := uc.Sign(user)
		if err != nil {
			t.Fatalf("Uploadcare sign for %q: %v", user, err)
		}
		status, body = postForm(t, usig.UploadURL, usig.Params)
		uuid, _ := body["file"].(string)
		if status != http.StatusOK || uuid == "" {
			t.Fatalf("emulator refused the broker's Uploadcare signature for user %q: %d %v", user, status, body)
		}
		file, err = uc.Prove(ctx, user, uuid)
		if err != nil || file.UserID != user {
			t.Fatalf("broker did not prove its own signed Uploadcare upload for %q: %+v %v", user, file, err)
		}
		if _, err := uc.Prove(ctx, user+"x", uuid); err == nil {
			t.Fatalf("user %q could prove %q's Uploadcare upload", user+"x", user)
		}
	})
}

// FuzzUploadcareExpire signs any expiry and checks the emulator's verdict
// matches the spec: accepted while in the future, refused once past, and
// never for the wrong reason.
func FuzzUploadcareExpire(f *testing.F) {
	base := fuzzEmulator(f)
	f.Add(int64(3600))
	f.Add(int64(-3600))
	f.Add(int64(1))
	f.Add(int64(1 << 40))
	f.Fuzz(func(t *testing.T, offset int64) {
		if offset > 10*365*24*3600 || offset < -10*365*24*3600 || (offset > -5 && offset < 5) {
			return // beyond any real expiry, or too close to now to judge
		}
		expire := time.Now().Unix() + offset
		fields := map[string]string{
			"UPLOADCARE_PUB_KEY": fzUCPublic, "UPLOADCARE_STORE": "0",
			"signature": signer.SignUploadcareUpload(fzUCSecret, expire), "expire": fmt.Sprint(expire),
		}
		status, body := postForm(t, base+"/uploadcare/upload/base/", fields)
		if offset > 0 && status != http.StatusOK {
			t.Fatalf("expire %+ds refused: %d %v", offset, status, body)
		}
		if offset < 0 && status == http.StatusOK {
			t.Fatalf("expire %+ds (past) accepted", offset)
		}
	})
}
