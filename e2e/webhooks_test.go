package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/signer"
)

const (
	whCloudinarySecret = "e2e_api_secret" // the secret in cloudinaryURL
	whUploadcareSecret = "e2e-webhook-signing-secret"
)

// startWebhookStack runs `broker emulate` and `broker serve` for both
// providers, wired so the emulator notifies the broker: PUBLIC_URL tells
// the broker to sign its webhook into Cloudinary uploads as
// notification_url, and tells the emulator where to send Uploadcare's
// webhooks. The broker's address must be known before either starts, so
// a free port is picked first.
func startWebhookStack(t *testing.T) (broker *process) {
	t.Helper()
	addr := whFreeAddr(t)
	publicURL := "http://" + addr
	emu := start(t, map[string]string{
		"ADDR":                      "127.0.0.1:0",
		"CLOUDINARY_URL":            cloudinaryURL,
		"UPLOADCARE_PUBLIC_KEY":     ucPublicKey,
		"UPLOADCARE_SECRET_KEY":     ucSecretKey,
		"UPLOADCARE_WEBHOOK_SECRET": whUploadcareSecret,
		"PUBLIC_URL":                publicURL,
	}, "emulate")
	broker = start(t, map[string]string{
		"ADDR":                      addr,
		"PUBLIC_URL":                publicURL,
		"DATABASE_URL":              testdb.PostgresURL(t),
		"CLOUDINARY_URL":            cloudinaryURL,
		"CLOUDINARY_UPLOAD_PREFIX":  emu.URL + "/cloudinary",
		"CLOUDINARY_DELIVERY_URL":   emu.URL + "/cloudinary",
		"UPLOADCARE_PUBLIC_KEY":     ucPublicKey,
		"UPLOADCARE_SECRET_KEY":     ucSecretKey,
		"UPLOADCARE_UPLOAD_URL":     emu.URL + "/uploadcare/upload",
		"UPLOADCARE_API_URL":        emu.URL + "/uploadcare/api",
		"UPLOADCARE_CDN_URL":        emu.URL + "/uploadcare/cdn",
		"UPLOADCARE_WEBHOOK_SECRET": whUploadcareSecret,
		"AUTH_JWT_SECRET":           jwtSecret,
		"RATE_LIMIT_PER_MINUTE":     "0",
	}, "serve")
	return broker
}

// whFreeAddr returns a loopback address nothing listens on right now.
func whFreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// whListed returns the provider IDs of the user's files.
func whListed(t *testing.T, broker *process, tok string) []string {
	t.Helper()
	r := call(t, "GET", broker.URL+"/files?limit=100", tok, "", nil)
	if r.Status != 200 {
		t.Fatalf("GET /files: %d %s", r.Status, r.Raw)
	}
	ids := []string{}
	files, _ := r.Body["files"].([]any)
	for _, f := range files {
		id, _ := f.(map[string]any)["provider_id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// whWaitListed polls GET /files until want is listed. The limit only turns
// a hang into a failure.
func whWaitListed(t *testing.T, broker *process, tok, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, id := range whListed(t, broker, tok) {
			if id == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not listed within 15 s; broker log:\n%s", want, broker.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// whSign gets upload parameters from the broker.
func whSign(t *testing.T, broker *process, tok, provider string) reply {
	t.Helper()
	sig := call(t, "GET", broker.URL+"/generate-signature?provider="+provider, tok, "", nil)
	if sig.Status != 200 {
		t.Fatalf("generate-signature %s: %d %s", provider, sig.Status, sig.Raw)
	}
	return sig
}

func whFields(sig reply) map[string]string {
	fields := map[string]string{}
	params, _ := sig.Body["params"].(map[string]any)
	for k, v := range params {
		fields[k], _ = v.(string)
	}
	return fields
}

// whPost sends a notification to the broker.
func whPost(t *testing.T, broker *process, path string, body []byte, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest("POST", broker.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Raw: string(raw)}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("POST %s: %d, body is not JSON: %q", path, resp.StatusCode, raw)
	}
	return r
}

func cldHeaders(body []byte, at time.Time, secret string) map[string]string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return map[string]string{
		"X-Cld-Timestamp": ts,
		"X-Cld-Signature": signer.SignCloudinaryNotification(body, ts, secret, signer.SHA1),
	}
}

func ucHeaders(body []byte, secret string) map[string]string {
	return map[string]string{"X-Uc-Signature": signer.SignUploadcareWebhook(secret, body)}
}

// An upload whose client never calls /save-metadata is listed within
// seconds, through each provider's notification.
func TestWebhookListsAnUploadNobodySaved(t *testing.T) {
	broker := startWebhookStack(t)
	tok := token(t, "nora")

	cld := whSign(t, broker, tok, "cloudinary")
	fields := whFields(cld)
	if want := broker.URL + "/webhooks/cloudinary"; fields["notification_url"] != want {
		t.Fatalf("signed notification_url = %q, want %q", fields["notification_url"], want)
	}
	fields["api_key"], _ = cld.Body["api_key"].(string)
	fields["signature"], _ = cld.Body["signature"].(string)
	up := postMultipart(t, cld.Body["upload_url"].(string), fields, "tab-closed.png", devPNG)
	if up.Status != 200 {
		t.Fatalf("Cloudinary upload: %d %s", up.Status, up.Raw)
	}
	whWaitListed(t, broker, tok, fields["public_id"])

	uc := whSign(t, broker, tok, "uploadcare")
	up = postMultipart(t, uc.Body["upload_url"].(string), whFields(uc), "tab-closed.txt", []byte("never saved"))
	uuid, _ := up.Body["file"].(string)
	if up.Status != 200 || uuid == "" {
		t.Fatalf("Uploadcare upload: %d %s", up.Status, up.Raw)
	}
	whWaitListed(t, broker, tok, uuid)
	if got := whListed(t, broker, tok); len(got) != 2 {
		t.Fatalf("nora's files: %v, want the two uploads once each", got)
	}
}

// hookSink keeps the notifications the emulator sends it.
type hookSink struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
}

func (s *hookSink) wait(t *testing.T, needle string) []byte {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		for _, b := range s.bodies {
			if bytes.Contains(b, []byte(needle)) {
				s.mu.Unlock()
				return b
			}
		}
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no notification mentioning %s", needle)
	return nil
}

// A forged, a stale and a replayed notification each change nothing. The
// Cloudinary notification is the emulator's own, captured by the test
// instead of going to the broker: an asset uploaded with the account's
// credentials under a user's folder, which only its notification records.
func TestForgedStaleAndReplayedNotificationsChangeNothing(t *testing.T) {
	broker := startWebhookStack(t)
	tok := token(t, "olga")
	sink := &hookSink{}
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)

	// The upload prefix the broker hands out is the emulator's.
	uploadURL := whSign(t, broker, tok, "cloudinary").Body["upload_url"].(string)
	uploadURL = strings.Replace(uploadURL, "/auto/upload", "/image/upload", 1)
	params := map[string]string{
		"timestamp":        strconv.FormatInt(time.Now().Unix(), 10),
		"public_id":        "uploads/olga/captured",
		"notification_url": sinkSrv.URL + "/webhooks/cloudinary",
	}
	fields := map[string]string{"api_key": "123456789012345", "signature": signer.SignCloudinary(params, whCloudinarySecret, signer.SHA1, 2)}
	for k, v := range params {
		fields[k] = v
	}
	if up := postMultipart(t, uploadURL, fields, "captured.png", devPNG); up.Status != 200 {
		t.Fatalf("upload: %d %s", up.Status, up.Raw)
	}
	body := sink.wait(t, "uploads/olga/captured")
	listedNone := func(what string) {
		t.Helper()
		if got := whListed(t, broker, tok); len(got) != 0 {
			t.Fatalf("after %s olga has %v, want nothing", what, got)
		}
	}

	forged := whPost(t, broker, "/webhooks/cloudinary", body, cldHeaders(body, time.Now(), "not-the-secret"))
	if forged.Status != 401 || forged.code() != "unauthorized" {
		t.Fatalf("forged: %d %s, want 401", forged.Status, forged.Raw)
	}
	listedNone("a forged notification")
	stale := whPost(t, broker, "/webhooks/cloudinary", body, cldHeaders(body, time.Now().Add(-3*time.Hour), whCloudinarySecret))
	if stale.Status != 401 || stale.code() != "unauthorized" {
		t.Fatalf("stale: %d %s, want 401", stale.Status, stale.Raw)
	}
	listedNone("a stale notification")

	// The genuine delivery records the asset (so the refusals above were
	// refusals of something that would have worked).
	genuine := cldHeaders(body, time.Now(), whCloudinarySecret)
	first := whPost(t, broker, "/webhooks/cloudinary", body, genuine)
	if first.Status != 201 || first.Body["outcome"] != "created" {
		t.Fatalf("genuine: %d %s, want 201 created", first.Status, first.Raw)
	}
	if got := whListed(t, broker, tok); len(got) != 1 {
		t.Fatalf("olga's files: %v", got)
	}
	if r := whPost(t, broker, "/webhooks/cloudinary", body, genuine); r.Status != 200 || r.Body["outcome"] != "repeat" {
		t.Fatalf("replay: %d %s, want 200 repeat", r.Status, r.Raw)
	}
	if got := whListed(t, broker, tok); len(got) != 1 {
		t.Fatalf("after the replay olga's files: %v", got)
	}
	// Olga deletes it; the replayed notification must not bring it back.
	id := first.file()["id"].(string)
	if r := call(t, "DELETE", broker.URL+"/files/"+id, tok, "", nil); r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Raw)
	}
	if r := whPost(t, broker, "/webhooks/cloudinary", body, genuine); r.Status != 200 || r.Body["outcome"] != "repeat" {
		t.Fatalf("replay after delete: %d %s, want 200 repeat", r.Status, r.Raw)
	}
	listedNone("a replay of a deleted file's notification")

	// Uploadcare: a forged file.deleted leaves the record; a replayed
	// file.uploaded after the user's delete does not bring it back.
	uc := whSign(t, broker, tok, "uploadcare")
	ucFields := whFields(uc)
	up := postMultipart(t, uc.Body["upload_url"].(string), ucFields, "keep.txt", []byte("keep me"))
	uuid, _ := up.Body["file"].(string)
	if uuid == "" {
		t.Fatalf("Uploadcare upload: %d %s", up.Status, up.Raw)
	}
	whWaitListed(t, broker, tok, uuid)
	deleted := []byte(fmt.Sprintf(`{"hook":{"event":"file.deleted","project_pub_key":%q},"data":{"uuid":%q}}`, ucPublicKey, uuid))
	if r := whPost(t, broker, "/webhooks/uploadcare", deleted, ucHeaders(deleted, "not-the-secret")); r.Status != 401 {
		t.Fatalf("forged file.deleted: %d %s, want 401", r.Status, r.Raw)
	}
	if r := whPost(t, broker, "/webhooks/uploadcare", deleted, nil); r.Status != 401 {
		t.Fatalf("unsigned file.deleted: %d %s, want 401", r.Status, r.Raw)
	}
	whWaitListed(t, broker, tok, uuid)
	uploaded := []byte(fmt.Sprintf(`{"hook":{"event":"file.uploaded","project_pub_key":%q},"data":{"uuid":%q,"metadata":{%q:%q}}}`,
		ucPublicKey, uuid, "broker_intent", ucFields["metadata[broker_intent]"]))
	if r := whPost(t, broker, "/webhooks/uploadcare", uploaded, ucHeaders(uploaded, whUploadcareSecret)); r.Status != 200 || r.Body["outcome"] != "repeat" {
		t.Fatalf("file.uploaded for a recorded file: %d %s, want 200 repeat", r.Status, r.Raw)
	}
	files := call(t, "GET", broker.URL+"/files?provider=uploadcare", tok, "", nil)
	ucID := files.Body["files"].([]any)[0].(map[string]any)["id"].(string)
	if r := call(t, "DELETE", broker.URL+"/files/"+ucID, tok, "", nil); r.Status != 200 {
		t.Fatalf("DELETE: %d %s (files %s)\n%s", r.Status, r.Raw, files.Raw, broker.Output())
	}
	if r := whPost(t, broker, "/webhooks/uploadcare", uploaded, ucHeaders(uploaded, whUploadcareSecret)); r.Status != 200 || r.Body["outcome"] != "repeat" {
		t.Fatalf("replayed file.uploaded: %d %s, want 200 repeat", r.Status, r.Raw)
	}
	listedNone("a replayed file.uploaded")
}
