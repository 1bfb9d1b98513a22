package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
)

const hookSecret = "uc-webhook-secret-for-tests"

// hookStack is a broker with both providers, the emulator sending their
// notifications either to the broker itself or to a capture server that
// keeps them for the test to deliver (when, how often and where it likes).
type hookStack struct {
	*stack
	dbURL   string
	capture *hookCapture
	// emuHook, when set, runs before the emulator handles each request:
	// the place to break the database in the middle of a delivery.
	emuHook atomic.Pointer[func(r *http.Request)]
	// newBroker starts another broker on store (a replica, or one whose
	// database is made to fail) and returns its URL.
	newBroker func(store metadata.Store) string
	ucClient  *uploadcare.Client
}

type hookOptions struct {
	// toBroker makes the emulator notify the broker; otherwise the
	// notifications go to the capture server.
	toBroker bool
	// brokerUCSecret is the broker's UPLOADCARE_WEBHOOK_SECRET; "" means
	// the emulator's, "-" none.
	brokerUCSecret string
}

func newHookStack(t *testing.T, o hookOptions) *hookStack {
	t.Helper()
	ctx := context.Background()
	hs := &hookStack{dbURL: testdb.PostgresURL(t), capture: newHookCapture(t)}
	if err := db.MigratePostgres(ctx, hs.dbURL); err != nil {
		t.Fatal(err)
	}
	store, err := db.OpenPostgres(ctx, hs.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)

	// The broker's URL must be known before the emulator is built, and the
	// emulator's before the broker is: the broker's server starts first
	// with its handler filled in at the end.
	var brokerHandler atomic.Pointer[http.Handler]
	brokerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*brokerHandler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(brokerSrv.Close)
	target := hs.capture.URL
	if o.toBroker {
		target = brokerSrv.URL
	}
	emu, err := emulator.New(emulator.Options{
		Cloudinary: &emulator.CloudinaryAccount{CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret},
		Uploadcare: &emulator.UploadcareProject{
			PublicKey: ucPub, SecretKey: ucSecret, SignedUploads: true,
			WebhookTargets: []string{target + "/webhooks/uploadcare"}, WebhookSecret: hookSecret,
		},
		NotificationRetryDelays: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := hs.emuHook.Load(); h != nil {
			(*h)(r)
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(emuSrv.Close)
	t.Cleanup(func() { _ = emu.Close() })

	ucWebhookSecret := hookSecret
	switch o.brokerUCSecret {
	case "-":
		ucWebhookSecret = ""
	case "":
	default:
		ucWebhookSecret = o.brokerUCSecret
	}
	cldClient := &cloudinary.Client{
		CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret,
		UploadPrefix: emuSrv.URL + "/cloudinary", DeliveryURL: emuSrv.URL + "/cloudinary",
		Algorithm: signer.SHA1, HTTP: &http.Client{Timeout: 5 * time.Second},
	}
	hs.ucClient = &uploadcare.Client{
		PublicKey: ucPub, SecretKey: ucSecret,
		UploadURL: emuSrv.URL + "/uploadcare/upload", APIURL: emuSrv.URL + "/uploadcare/api", CDNURL: emuSrv.URL + "/uploadcare/cdn",
		HTTP: &http.Client{Timeout: 5 * time.Second},
	}
	verifier, err := auth.New(ctx, config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	handlerFor := func(store metadata.Store) http.Handler {
		svc := &metadata.Service{
			Store: store,
			Cloudinary: metadata.NewCloudinary(metadata.CloudinarySettings{
				CloudName: cloudName, APIKey: apiKey, APISecret: apiSecret,
				UploadPrefix: cldClient.UploadPrefix, Folder: "uploads", Algorithm: signer.SHA1, TTL: 30 * time.Minute,
				NotificationURL: target + "/webhooks/cloudinary",
			}, cldClient),
			Uploadcare: metadata.NewUploadcare(metadata.UploadcareSettings{
				PublicKey: ucPub, SecretKey: ucSecret, UploadURL: hs.ucClient.UploadURL, TTL: 30 * time.Minute,
				WebhookSecret: ucWebhookSecret,
			}, hs.ucClient),
		}
		return httpapi.New(httpapi.Deps{Service: svc, Auth: verifier, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
	h := handlerFor(store)
	brokerHandler.Store(&h)
	hs.newBroker = func(store metadata.Store) string {
		srv := httptest.NewServer(handlerFor(store))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	hs.stack = &stack{t: t, URL: brokerSrv.URL, Emu: emu, EmuURL: emuSrv.URL, Store: store}
	return hs
}

// hook is one notification the emulator sent.
type hook struct {
	Path   string
	Header http.Header
	Body   []byte
}

// hookCapture is a stand-in for the broker's webhook endpoints that keeps
// every delivery and answers 200.
type hookCapture struct {
	URL string
	mu  sync.Mutex
	got []hook
}

func newHookCapture(t *testing.T) *hookCapture {
	c := &hookCapture{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.got = append(c.got, hook{Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		c.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// wait returns the first delivery to path whose body mentions every one of
// needles, waiting for the emulator to send it.
func (c *hookCapture) wait(t *testing.T, path string, needles ...string) hook {
	t.Helper()
	var found hook
	eventually(t, "a notification to "+path+" mentioning "+strings.Join(needles, ", "), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
	next:
		for _, h := range c.got {
			if h.Path != path {
				continue
			}
			for _, n := range needles {
				if !bytes.Contains(h.Body, []byte(n)) {
					continue next
				}
			}
			found = h
			return true
		}
		return false
	})
	return found
}

// eventually polls cond until it holds. The limit is generous: it only
// turns a hang into a failure, it measures nothing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deliver POSTs a notification to a broker's webhook endpoint.
func deliver(t *testing.T, brokerURL string, h hook) response {
	t.Helper()
	req, err := http.NewRequest("POST", brokerURL+h.Path, bytes.NewReader(h.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Header.Clone()
	return send(t, req)
}

// cldHook signs body as Cloudinary does, at the given time.
func cldHook(body []byte, at time.Time, secret string) hook {
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Cld-Timestamp", ts)
	h.Set("X-Cld-Signature", signer.SignCloudinaryNotification(body, ts, secret, signer.SHA1))
	return hook{Path: "/webhooks/cloudinary", Header: h, Body: body}
}

// ucHook signs body as Uploadcare does.
func ucHook(body []byte, secret string) hook {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Uc-Signature", signer.SignUploadcareWebhook(secret, body))
	return hook{Path: "/webhooks/uploadcare", Header: h, Body: body}
}

// countAsset counts the records of one asset, across users, in the database.
func (s *hookStack) countAsset(provider, providerID string) int {
	s.t.Helper()
	var n int
	err := s.Store.Pool().QueryRow(context.Background(),
		"SELECT count(*) FROM files WHERE provider = $1 AND provider_id = $2", provider, providerID).Scan(&n)
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

// listed returns the ids of the user's files as GET /files answers them.
func (s *hookStack) listed(user string) []string {
	s.t.Helper()
	r := s.do("GET", "/files", user, "")
	if r.Status != 200 {
		s.t.Fatalf("GET /files: %d %s", r.Status, r.Raw)
	}
	var ids []string
	for _, f := range r.Body["files"].([]any) {
		ids = append(ids, f.(map[string]any)["provider_id"].(string))
	}
	return ids
}

func publicIDOf(t *testing.T, uploadAnswer string) string {
	t.Helper()
	var a struct {
		PublicID string `json:"public_id"`
	}
	if err := json.Unmarshal([]byte(uploadAnswer), &a); err != nil || a.PublicID == "" {
		t.Fatalf("upload answer without public_id: %s", uploadAnswer)
	}
	return a.PublicID
}

func outcome(r response) string { s, _ := r.Body["outcome"].(string); return s }

// wantOutcome checks a webhook answer's status and outcome.
func wantOutcome(t *testing.T, what string, r response, status int, want string) {
	t.Helper()
	if r.Status != status || r.Body["success"] != true || outcome(r) != want {
		t.Fatalf("%s: %d %s, want %d with outcome %q", what, r.Status, r.Raw, status, want)
	}
}

func TestWebhookRecordsAnUploadWhoseClientNeverSaves(t *testing.T) {
	s := newHookStack(t, hookOptions{toBroker: true})

	t.Run("cloudinary", func(t *testing.T) {
		publicID := publicIDOf(t, s.uploadSigned("carol"))
		eventually(t, "the upload in carol's files", func() bool { return len(s.listed("carol")) == 1 })
		if got := s.listed("carol"); got[0] != publicID {
			t.Fatalf("listed %v, want %s", got, publicID)
		}
		// The client's save, late, finds the record: one record, 200.
		r := s.do("POST", "/save-metadata", "carol", fmt.Sprintf(`{"public_id":%q,"resource_type":"image"}`, publicID))
		if r.Status != 200 {
			t.Fatalf("late save: %d %s", r.Status, r.Raw)
		}
		if n := s.countAsset("cloudinary", publicID); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	})

	t.Run("uploadcare", func(t *testing.T) {
		uuid := s.uploadcareDirect("dave", "notes.txt", []byte("hello webhook"))
		eventually(t, "the upload in dave's files", func() bool { return len(s.listed("dave")) == 1 })
		if got := s.listed("dave"); got[0] != uuid {
			t.Fatalf("listed %v, want %s", got, uuid)
		}
		// Recorded means stored: an unstored file would expire in a day.
		info, err := s.ucClient.File(context.Background(), uuid)
		if err != nil {
			t.Fatal(err)
		}
		if info.DatetimeStored == nil {
			t.Error("the webhook recorded the file without storing it at Uploadcare")
		}
		r := s.saveUploadcare("dave", uuid)
		if r.Status != 200 {
			t.Fatalf("late save: %d %s", r.Status, r.Raw)
		}
		if n := s.countAsset("uploadcare", uuid); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	})
}

func TestCloudinaryWebhookRefusesForgedStaleAndTampered(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	publicID := publicIDOf(t, s.uploadSigned("erin"))
	sent := s.capture.wait(t, "/webhooks/cloudinary", publicID)
	body := sent.Body
	now := time.Now()

	withoutHeader := func(name string) hook {
		h := cldHook(body, now, apiSecret)
		h.Header.Del(name)
		return h
	}
	msTimestamp := cldHook(body, now, apiSecret)
	msTS := strconv.FormatInt(now.UnixMilli(), 10)
	msTimestamp.Header.Set("X-Cld-Timestamp", msTS)
	msTimestamp.Header.Set("X-Cld-Signature", signer.SignCloudinaryNotification(body, msTS, apiSecret, signer.SHA1))
	retimed := sent
	retimed.Header = sent.Header.Clone()
	retimed.Header.Set("X-Cld-Timestamp", strconv.FormatInt(now.Unix()+1, 10))
	sha256Sig := cldHook(body, now, apiSecret)
	sha256Sig.Header.Set("X-Cld-Signature", signer.SignCloudinaryNotification(body, sha256Sig.Header.Get("X-Cld-Timestamp"), apiSecret, signer.SHA256))

	for _, tc := range []struct {
		name string
		h    hook
	}{
		{"wrong secret", cldHook(body, now, "not-the-secret")},
		{"tampered body", hook{Path: sent.Path, Header: sent.Header, Body: bytes.Replace(body, []byte("erin"), []byte("mall"), 1)}},
		{"body with a trailing newline", hook{Path: sent.Path, Header: sent.Header, Body: append(append([]byte{}, body...), '\n')}},
		{"timestamp changed after signing", retimed},
		{"no signature", withoutHeader("X-Cld-Signature")},
		{"no timestamp", withoutHeader("X-Cld-Timestamp")},
		{"stale: signed 2h1m ago", cldHook(body, now.Add(-2*time.Hour-time.Minute), apiSecret)},
		{"from the future", cldHook(body, now.Add(time.Hour), apiSecret)},
		{"timestamp in milliseconds", msTimestamp},
		{"SHA-256 on a SHA-1 account", sha256Sig},
	} {
		r := deliver(t, s.URL, tc.h)
		if r.Status != 401 || r.code() != "unauthorized" || r.Body["success"] != false {
			t.Errorf("%s: %d %s, want 401 unauthorized", tc.name, r.Status, r.Raw)
		}
	}
	if n := s.countFiles(); n != 0 {
		t.Fatalf("refused notifications recorded %d files", n)
	}
	// A refusal is not remembered as a delivery: the genuine one, signed
	// an hour ago (inside the 2 h window), still records the file.
	wantOutcome(t, "genuine delivery", deliver(t, s.URL, cldHook(body, now.Add(-time.Hour), apiSecret)), 201, "created")
}

func TestUploadcareWebhookRefusesForgedSignatures(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	uuid := s.uploadcareDirect("erin", "a.txt", []byte("abc"))
	sent := s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.uploaded"`)
	body := sent.Body

	noSig := ucHook(body, hookSecret)
	noSig.Header.Del("X-Uc-Signature")
	bare := ucHook(body, hookSecret)
	bare.Header.Set("X-Uc-Signature", strings.TrimPrefix(bare.Header.Get("X-Uc-Signature"), "v1="))
	padded := ucHook(body, hookSecret)
	padded.Header.Set("X-Uc-Signature", padded.Header.Get("X-Uc-Signature")+",v1=00")
	for _, tc := range []struct {
		name string
		h    hook
	}{
		{"wrong secret", ucHook(body, "not-the-secret")},
		{"tampered body", hook{Path: sent.Path, Header: sent.Header, Body: bytes.Replace(body, []byte(uuid), []byte("00000000-0000-4000-8000-000000000000"), 1)}},
		{"re-encoded body", hook{Path: sent.Path, Header: sent.Header, Body: reindent(t, body)}},
		{"no signature", noSig},
		{"signature without v1=", bare},
		{"signature with more after it", padded},
	} {
		r := deliver(t, s.URL, tc.h)
		if r.Status != 401 || r.code() != "unauthorized" {
			t.Errorf("%s: %d %s, want 401 unauthorized", tc.name, r.Status, r.Raw)
		}
	}
	if n := s.countFiles(); n != 0 {
		t.Fatalf("refused webhooks recorded %d files", n)
	}
	wantOutcome(t, "genuine delivery", deliver(t, s.URL, sent), 201, "created")

	// A broker without UPLOADCARE_WEBHOOK_SECRET verifies nothing, so it
	// accepts nothing, signed or not.
	unset := newHookStack(t, hookOptions{brokerUCSecret: "-"})
	for _, h := range []hook{sent, noSig} {
		if r := deliver(t, unset.URL, h); r.Status != 401 || r.code() != "unauthorized" {
			t.Errorf("broker without a webhook secret: %d %s, want 401", r.Status, r.Raw)
		}
	}
}

func reindent(t *testing.T, body []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// A replay changes nothing, even after the user deleted the file: the
// delivery is remembered, so it cannot bring the record back.
func TestWebhookReplayChangesNothing(t *testing.T) {
	s := newHookStack(t, hookOptions{})

	t.Run("cloudinary", func(t *testing.T) {
		publicID := publicIDOf(t, s.uploadSigned("frank"))
		h := s.capture.wait(t, "/webhooks/cloudinary", publicID)
		first := deliver(t, s.URL, h)
		wantOutcome(t, "first delivery", first, 201, "created")
		wantOutcome(t, "replay", deliver(t, s.URL, h), 200, "repeat")
		// Re-signed with a fresh timestamp, the same body is the same
		// notification.
		wantOutcome(t, "replay, re-signed", deliver(t, s.URL, cldHook(h.Body, time.Now(), apiSecret)), 200, "repeat")
		if n := s.countAsset("cloudinary", publicID); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
		id := first.Body["file"].(map[string]any)["id"].(string)
		if r := s.do("DELETE", "/files/"+id, "frank", ""); r.Status != 200 {
			t.Fatalf("DELETE: %d %s", r.Status, r.Raw)
		}
		wantOutcome(t, "replay after delete", deliver(t, s.URL, h), 200, "repeat")
		if n := s.countAsset("cloudinary", publicID); n != 0 {
			t.Fatalf("the replay brought the deleted record back")
		}
	})

	t.Run("uploadcare", func(t *testing.T) {
		uuid := s.uploadcareDirect("frank", "b.txt", []byte("replay"))
		h := s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.uploaded"`)
		first := deliver(t, s.URL, h)
		wantOutcome(t, "first delivery", first, 201, "created")
		wantOutcome(t, "replay", deliver(t, s.URL, h), 200, "repeat")
		id := first.Body["file"].(map[string]any)["id"].(string)
		if r := s.do("DELETE", "/files/"+id, "frank", ""); r.Status != 200 {
			t.Fatalf("DELETE: %d %s", r.Status, r.Raw)
		}
		wantOutcome(t, "replay after delete", deliver(t, s.URL, h), 200, "repeat")
		if n := s.countAsset("uploadcare", uuid); n != 0 {
			t.Fatalf("the replay brought the deleted record back")
		}
	})
}

// A notification that arrives late, after the user deleted the file, finds
// the asset gone at the provider and records nothing.
func TestLateUploadNotificationAfterDeleteRecordsNothing(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	answer := s.uploadSigned("gina")
	publicID := publicIDOf(t, answer)
	h := s.capture.wait(t, "/webhooks/cloudinary", publicID)
	saved := s.do("POST", "/save-metadata", "gina", answer)
	if saved.Status != 201 {
		t.Fatalf("save: %d %s", saved.Status, saved.Raw)
	}
	if r := s.do("DELETE", "/files/"+saved.Body["file"].(map[string]any)["id"].(string), "gina", ""); r.Status != 200 {
		t.Fatalf("DELETE: %d %s", r.Status, r.Raw)
	}
	wantOutcome(t, "late first delivery", deliver(t, s.URL, h), 200, "ignored")
	if n := s.countAsset("cloudinary", publicID); n != 0 {
		t.Fatal("a late notification recorded a deleted asset")
	}
}

func TestDeleteNotificationsRemoveTheRecord(t *testing.T) {
	s := newHookStack(t, hookOptions{})

	t.Run("cloudinary", func(t *testing.T) {
		publicID := publicIDOf(t, s.uploadSigned("hank"))
		wantOutcome(t, "upload", deliver(t, s.URL, s.capture.wait(t, "/webhooks/cloudinary", publicID)), 201, "created")
		// Deleted in Cloudinary's console, say: Cloudinary's delete
		// notification names the asset.
		other := fmt.Sprintf(`{"resource_type":"raw","type":"upload","public_id":%q}`, publicID)
		wrongType := cldHook([]byte(fmt.Sprintf(`{"notification_type":"delete","resources":[%s]}`, other)), time.Now(), apiSecret)
		wantOutcome(t, "delete of a raw asset by that name", deliver(t, s.URL, wrongType), 200, "ignored")
		body := fmt.Sprintf(`{"notification_type":"delete","resources":[{"resource_type":"image","type":"upload","public_id":%q,"asset_id":"abc","version":1}],"extra":{"unknown":[1,2]}}`, publicID)
		r := deliver(t, s.URL, cldHook([]byte(body), time.Now(), apiSecret))
		wantOutcome(t, "delete", r, 200, "deleted")
		if r.Body["removed"] != float64(1) {
			t.Errorf("removed = %v, want 1", r.Body["removed"])
		}
		if n := s.countAsset("cloudinary", publicID); n != 0 {
			t.Fatal("the record survived the delete notification")
		}
	})

	t.Run("uploadcare", func(t *testing.T) {
		uuid := s.uploadcareDirect("hank", "c.txt", []byte("to delete"))
		wantOutcome(t, "upload", deliver(t, s.URL, s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.uploaded"`)), 201, "created")
		if err := s.ucClient.Delete(context.Background(), uuid); err != nil {
			t.Fatal(err)
		}
		r := deliver(t, s.URL, s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.deleted"`))
		wantOutcome(t, "file.deleted", r, 200, "deleted")
		if n := s.countAsset("uploadcare", uuid); n != 0 {
			t.Fatal("the record survived file.deleted")
		}
	})
}

// Genuine notifications that ask nothing of the broker are answered 200,
// so the provider stops retrying, and change nothing.
func TestWebhookIgnoresWhatIsNotTheBrokers(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	ctx := context.Background()

	// Uploaded with the account's credentials but not through the broker.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	params := map[string]string{"timestamp": ts, "public_id": "elsewhere/photo", "notification_url": s.capture.URL + "/webhooks/cloudinary"}
	postCloudinaryUpload(t, s.EmuURL+"/cloudinary/v1_1/"+cloudName+"/image/upload", params, signer.SignCloudinary(params, apiSecret, signer.SHA1, 2))
	foreign := s.capture.wait(t, "/webhooks/cloudinary", "elsewhere/photo")
	wantOutcome(t, "public ID outside the folder", deliver(t, s.URL, foreign), 200, "ignored")

	ucForeign, err := s.ucClient.UploadBase(ctx, strings.NewReader("no intent"), "x.txt", "text/plain", "0", map[string]string{"app": "other"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, "Uploadcare file without an intent", deliver(t, s.URL, s.capture.wait(t, "/webhooks/uploadcare", ucForeign, `"file.uploaded"`)), 200, "ignored")

	otherProject := ucHook([]byte(`{"hook":{"event":"file.uploaded","project_pub_key":"someoneelse"},"data":{"uuid":"`+ucForeign+`"}}`), hookSecret)
	wantOutcome(t, "another project's webhook", deliver(t, s.URL, otherProject), 200, "ignored")
	for name, h := range map[string]hook{
		"Cloudinary eager notification": cldHook([]byte(`{"notification_type":"eager","public_id":"uploads/x/y"}`), time.Now(), apiSecret),
		"Uploadcare file.info_updated":  ucHook([]byte(`{"hook":{"event":"file.info_updated"},"data":{"uuid":"`+ucForeign+`"}}`), hookSecret),
	} {
		wantOutcome(t, name, deliver(t, s.URL, h), 200, "ignored")
	}
	if n := s.countFiles(); n != 0 {
		t.Fatalf("%d files recorded, want none", n)
	}

	// Signed but not a JSON object: a bad request, not a bug.
	for _, h := range []hook{cldHook([]byte(`not json`), time.Now(), apiSecret), ucHook([]byte(`[1,2]`), hookSecret), ucHook([]byte(`{"data":{"uuid":7}}`), hookSecret)} {
		if r := deliver(t, s.URL, h); r.Status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s %s: %d %s, want 400", h.Path, h.Body, r.Status, r.Raw)
		}
	}
}

// postCloudinaryUpload uploads a PNG to the emulator with the given signed
// fields.
func postCloudinaryUpload(t *testing.T, uploadURL string, params map[string]string, signature string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range params {
		_ = mw.WriteField(k, v)
	}
	_ = mw.WriteField("api_key", apiKey)
	_ = mw.WriteField("signature", signature)
	fw, _ := mw.CreateFormFile("file", "p.png")
	_, _ = fw.Write(pngBytes)
	_ = mw.Close()
	req, _ := http.NewRequest("POST", uploadURL, &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if r := send(t, req); r.Status != 200 {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
}

// The client's save and the provider's notification race; whichever wins
// creates the record and the other answers as a repeat.
func TestClientSaveAndWebhookRaceToOneRecord(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	const rounds = 15
	var webhookWon atomic.Int32
	race := func(t *testing.T, provider, assetID string, save func() response, h hook) {
		var saved, hooked response
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; saved = save() }()
		go func() { defer wg.Done(); <-start; hooked = deliver(t, s.URL, h) }()
		close(start)
		wg.Wait()
		if saved.Status != 201 && saved.Status != 200 {
			t.Fatalf("save: %d %s", saved.Status, saved.Raw)
		}
		if hooked.Status != 201 && hooked.Status != 200 {
			t.Fatalf("webhook: %d %s", hooked.Status, hooked.Raw)
		}
		if creators := btoi(saved.Status == 201) + btoi(outcome(hooked) == "created"); creators != 1 {
			t.Fatalf("%d roads created the record (save %d, webhook %s), want exactly 1", creators, saved.Status, outcome(hooked))
		}
		if saved.Body["file"].(map[string]any)["id"] != hooked.Body["file"].(map[string]any)["id"] {
			t.Fatalf("the roads answered different records: %s / %s", saved.Raw, hooked.Raw)
		}
		if n := s.countAsset(provider, assetID); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
		if outcome(hooked) == "created" {
			webhookWon.Add(1)
		}
	}
	// Which road wins is up to the scheduler; both should, over the runs.
	t.Cleanup(func() { t.Logf("the webhook created the record in %d of %d races", webhookWon.Load(), 2*rounds) })
	t.Run("cloudinary", func(t *testing.T) {
		for range rounds {
			answer := s.uploadSigned("ivan")
			publicID := publicIDOf(t, answer)
			h := s.capture.wait(t, "/webhooks/cloudinary", publicID)
			race(t, "cloudinary", publicID, func() response { return s.do("POST", "/save-metadata", "ivan", answer) }, h)
		}
	})
	t.Run("uploadcare", func(t *testing.T) {
		for i := range rounds {
			uuid := s.uploadcareDirect("ivan", fmt.Sprintf("r%d.txt", i), []byte("race"))
			h := s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.uploaded"`)
			race(t, "uploadcare", uuid, func() response { return s.saveUploadcare("ivan", uuid) }, h)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The provider may deliver one notification to several replicas at once
// (a retry overlapping a slow first attempt behind a load balancer): three
// brokers, each with its own connection pool on the one database.
func TestSameWebhookToThreeBrokersMakesOneRecord(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	urls := []string{s.URL}
	for range 2 {
		store, err := db.OpenPostgres(context.Background(), s.dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(store.Close)
		urls = append(urls, s.newBroker(store))
	}
	const rounds = 8
	fanOut := func(t *testing.T, provider, assetID string, h hook) {
		answers := make([]response, len(urls))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, u := range urls {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; answers[i] = deliver(t, u, h) }()
		}
		close(start)
		wg.Wait()
		created := 0
		for i, r := range answers {
			if r.Status != 200 && r.Status != 201 {
				t.Fatalf("broker %d: %d %s", i, r.Status, r.Raw)
			}
			created += btoi(outcome(r) == "created")
		}
		if created != 1 {
			t.Fatalf("%d brokers created the record, want exactly 1", created)
		}
		if n := s.countAsset(provider, assetID); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	}
	t.Run("cloudinary", func(t *testing.T) {
		for range rounds {
			publicID := publicIDOf(t, s.uploadSigned("judy"))
			fanOut(t, "cloudinary", publicID, s.capture.wait(t, "/webhooks/cloudinary", publicID))
		}
	})
	t.Run("uploadcare", func(t *testing.T) {
		for i := range rounds {
			uuid := s.uploadcareDirect("judy", fmt.Sprintf("f%d.txt", i), []byte("fan out"))
			fanOut(t, "uploadcare", uuid, s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.uploaded"`))
		}
	})
}

// dbProxy stands between a broker and PostgreSQL so a test can take the
// database away (every connection cut, new ones refused) and bring it back.
type dbProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newDBProxy(t *testing.T, dbURL string) (*dbProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *dbProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

func (p *dbProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// The database goes away in the middle of a delivery, after the provider
// proved the upload and before the record is written: 503 with
// Retry-After, nothing written, nothing remembered; the provider's next
// attempt records the file.
func TestWebhookWithTheDatabaseDownIs503AndTheRetryRecords(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	proxy, proxiedURL := newDBProxy(t, s.dbURL)
	store, err := db.OpenPostgres(context.Background(), proxiedURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	flaky := s.newBroker(store)

	check := func(t *testing.T, provider, assetID, proofPath string, h hook) {
		// Down while the broker asks the provider for its proof.
		breakDB := func(r *http.Request) {
			if strings.Contains(r.URL.Path, proofPath) {
				proxy.setDown(true)
			}
		}
		s.emuHook.Store(&breakDB)
		r := deliver(t, flaky, h)
		s.emuHook.Store(nil)
		if r.Status != 503 || r.code() != "unavailable" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("database down: %d %s (Retry-After %q), want 503 unavailable with Retry-After", r.Status, r.Raw, r.Header.Get("Retry-After"))
		}
		if n := s.countAsset(provider, assetID); n != 0 {
			t.Fatalf("%d records written while the database was down", n)
		}
		// Down from the start: refused before the provider is asked.
		r = deliver(t, flaky, h)
		if r.Status != 503 || r.Header.Get("Retry-After") == "" {
			t.Fatalf("database down: %d %s, want 503 with Retry-After", r.Status, r.Raw)
		}
		proxy.setDown(false)
		wantOutcome(t, "the retry", deliver(t, flaky, h), 201, "created")
		if n := s.countAsset(provider, assetID); n != 1 {
			t.Fatalf("%d records, want 1", n)
		}
	}
	t.Run("cloudinary", func(t *testing.T) {
		publicID := publicIDOf(t, s.uploadSigned("kate"))
		check(t, "cloudinary", publicID, "/resources/", s.capture.wait(t, "/webhooks/cloudinary", publicID))
	})
	t.Run("uploadcare", func(t *testing.T) {
		uuid := s.uploadcareDirect("kate", "d.txt", []byte("db down"))
		check(t, "uploadcare", uuid, "/storage/", s.capture.wait(t, "/webhooks/uploadcare", uuid, `"file.uploaded"`))
	})
}

// The emulator itself retries a notification the broker could not take:
// with the database down at first and back after the first 503, the file
// is recorded without anyone delivering by hand.
func TestEmulatorRetriesUntilTheBrokerRecords(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	proxy, proxiedURL := newDBProxy(t, s.dbURL)
	store, err := db.OpenPostgres(context.Background(), proxiedURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	// The emulator notifies a relay in front of a broker on the proxied
	// database; the relay brings the database back after the first 503.
	flaky := s.newBroker(store)
	var refused atomic.Int32
	proxy.setDown(true)
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(r.Method, flaky+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && refused.Add(1) == 1 {
			proxy.setDown(false)
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(relay.Close)

	// A Cloudinary upload signed to notify the relay.
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	params := map[string]string{"timestamp": ts, "public_id": "uploads/liam/retried", "notification_url": relay.URL + "/webhooks/cloudinary"}
	postCloudinaryUpload(t, s.EmuURL+"/cloudinary/v1_1/"+cloudName+"/image/upload", params, signer.SignCloudinary(params, apiSecret, signer.SHA1, 2))
	eventually(t, "the retried notification's record", func() bool { return s.countAsset("cloudinary", "uploads/liam/retried") == 1 })
	if refused.Load() < 1 {
		t.Fatal("the first attempt was not refused; the test proved nothing")
	}
	if got := s.listed("liam"); len(got) != 1 {
		t.Fatalf("liam's files: %v", got)
	}
}

// The user's DELETE makes the provider delete the file, and the provider's
// file.deleted may reach the broker (and remove the record) before the
// DELETE itself gets to it: the user still gets 200, the file is gone.
// Here the notification is delivered, signed, while the emulator is being
// asked to delete, so it always wins.
func TestUserDeleteOvertakenByTheDeleteNotificationIs200(t *testing.T) {
	s := newHookStack(t, hookOptions{})
	uuid := s.uploadcareDirect("mia", "e.txt", []byte("overtaken"))
	saved := s.saveUploadcare("mia", uuid)
	if saved.Status != 201 {
		t.Fatalf("save: %d %s", saved.Status, saved.Raw)
	}
	notified := ucHook([]byte(fmt.Sprintf(`{"hook":{"event":"file.deleted","project_pub_key":%q},"data":{"uuid":%q}}`, ucPub, uuid)), hookSecret)
	var overtaken response
	first := func(r *http.Request) {
		if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, uuid) {
			overtaken = deliver(t, s.URL, notified)
		}
	}
	s.emuHook.Store(&first)
	r := s.do("DELETE", "/files/"+saved.Body["file"].(map[string]any)["id"].(string), "mia", "")
	s.emuHook.Store(nil)
	wantOutcome(t, "the notification", overtaken, 200, "deleted")
	if r.Status != 200 || r.Body["success"] != true {
		t.Fatalf("DELETE overtaken by the notification: %d %s, want 200", r.Status, r.Raw)
	}
	if n := s.countAsset("uploadcare", uuid); n != 0 {
		t.Fatalf("%d records left", n)
	}
}
