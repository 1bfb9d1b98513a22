package metadata

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/signer"
)

// The spec's notification vectors (specs/cloudinary-vectors.json N1, N2).
const (
	n1Body      = `{"public_id":"117e5550-7bfa-11e4-80d7-f962166bd3be","version":1417727468}`
	n1Timestamp = "1417727468"
	n1Secret    = "shhh"
	n1Signature = "bac927006d3ce039ef7632e2c03189348d02924a"

	n2Body      = `{"notification_type":"upload","timestamp":"2023-11-14T22:13:20+00:00","request_id":"abc123","asset_id":"0123456789abcdef0123456789abcdef","public_id":"user-uploads/42/avatar_42","version":1700000123,"width":640,"height":480,"format":"jpg","resource_type":"image","created_at":"2023-11-14T22:13:20Z","bytes":12345,"type":"upload","url":"http://res.cloudinary.com/demo/image/upload/v1700000123/user-uploads/42/avatar_42.jpg","secure_url":"https://res.cloudinary.com/demo/image/upload/v1700000123/user-uploads/42/avatar_42.jpg"}`
	n2Timestamp = "1700000200"
	n2Secret    = "test_secret_123"
	n2Signature = "5553490e36e086f39f6f3e397ee23ab2b265b012"
)

func cloudinaryAt(secret string, alg signer.Algorithm, maxAge time.Duration, now time.Time) *Cloudinary {
	c := NewCloudinary(CloudinarySettings{APISecret: secret, Algorithm: alg, Folder: "user-uploads", WebhookMaxAge: maxAge}, nil)
	c.SetClock(func() time.Time { return now })
	return c
}

func unixString(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestVerifyCloudinaryNotification(t *testing.T) {
	sentN1, _ := strconv.ParseInt(n1Timestamp, 10, 64)
	n1Sent := time.Unix(sentN1, 0)
	now := time.Unix(1_800_000_000, 0)
	sign := func(body, ts, secret string, alg signer.Algorithm) string {
		return signer.SignCloudinaryNotification([]byte(body), ts, secret, alg)
	}
	tsAt := func(d time.Duration) string { return unixString(now.Add(d)) }
	for _, tc := range []struct {
		name           string
		c              *Cloudinary
		body, ts, sig  string
		wantValid      bool
		wantMsgContain string
	}{
		{name: "N1 vector when it was sent", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent), body: n1Body, ts: n1Timestamp, sig: n1Signature, wantValid: true},
		{name: "N1 vector, upper-case hex", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent), body: n1Body, ts: n1Timestamp, sig: "BAC927006D3CE039EF7632E2C03189348D02924A", wantValid: true},
		{name: "N1 vector two hours later, the default window", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent.Add(2*time.Hour)), body: n1Body, ts: n1Timestamp, sig: n1Signature, wantValid: true},
		{name: "N1 vector two hours and a second later", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent.Add(2*time.Hour+time.Second)), body: n1Body, ts: n1Timestamp, sig: n1Signature, wantMsgContain: "stale"},
		{name: "N1 vector a year later", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent.AddDate(1, 0, 0)), body: n1Body, ts: n1Timestamp, sig: n1Signature, wantMsgContain: "stale"},
		{name: "N1 with another secret", c: cloudinaryAt("other", signer.SHA1, 0, n1Sent), body: n1Body, ts: n1Timestamp, sig: n1Signature, wantMsgContain: "does not verify"},
		{name: "N1 with the body re-encoded", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent), body: `{"public_id": "117e5550-7bfa-11e4-80d7-f962166bd3be", "version": 1417727468}`, ts: n1Timestamp, sig: n1Signature, wantMsgContain: "does not verify"},
		{name: "N1 with another timestamp", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent), body: n1Body, ts: "1417727469", sig: n1Signature, wantMsgContain: "does not verify"},
		{name: "N1 with the timestamp zero-padded", c: cloudinaryAt(n1Secret, signer.SHA1, 0, n1Sent), body: n1Body, ts: "0" + n1Timestamp, sig: n1Signature, wantMsgContain: "does not verify"},
		{name: "N2 vector", c: cloudinaryAt(n2Secret, signer.SHA1, 0, time.Unix(1700000200, 0)), body: n2Body, ts: n2Timestamp, sig: n2Signature, wantValid: true},
		{name: "SHA-256 account", c: cloudinaryAt("s3cret", signer.SHA256, 0, now), body: `{}`, ts: tsAt(0), sig: sign(`{}`, tsAt(0), "s3cret", signer.SHA256), wantValid: true},
		{name: "SHA-1 digest on a SHA-256 account", c: cloudinaryAt("s3cret", signer.SHA256, 0, now), body: `{}`, ts: tsAt(0), sig: sign(`{}`, tsAt(0), "s3cret", signer.SHA1), wantMsgContain: "does not verify"},
		{name: "SHA-256 digest on a SHA-1 account", c: cloudinaryAt("s3cret", signer.SHA1, 0, now), body: `{}`, ts: tsAt(0), sig: sign(`{}`, tsAt(0), "s3cret", signer.SHA256), wantMsgContain: "does not verify"},
		{name: "configured window: inside", c: cloudinaryAt("s", signer.SHA1, 10*time.Minute, now), body: `{}`, ts: tsAt(-10 * time.Minute), sig: sign(`{}`, tsAt(-10*time.Minute), "s", signer.SHA1), wantValid: true},
		{name: "configured window: outside", c: cloudinaryAt("s", signer.SHA1, 10*time.Minute, now), body: `{}`, ts: tsAt(-11 * time.Minute), sig: sign(`{}`, tsAt(-11*time.Minute), "s", signer.SHA1), wantMsgContain: "stale"},
		{name: "clock skew: five minutes ahead", c: cloudinaryAt("s", signer.SHA1, 0, now), body: `{}`, ts: tsAt(5 * time.Minute), sig: sign(`{}`, tsAt(5*time.Minute), "s", signer.SHA1), wantValid: true},
		{name: "future: six minutes ahead", c: cloudinaryAt("s", signer.SHA1, 0, now), body: `{}`, ts: tsAt(6 * time.Minute), sig: sign(`{}`, tsAt(6*time.Minute), "s", signer.SHA1), wantMsgContain: "future"},
		{name: "milliseconds (the node SDK's own N4 test)", c: cloudinaryAt("s", signer.SHA1, 0, now), body: `{}`, ts: strconv.FormatInt(now.UnixMilli(), 10), sig: sign(`{}`, strconv.FormatInt(now.UnixMilli(), 10), "s", signer.SHA1), wantMsgContain: "future"},
		{name: "timestamp not a number", c: cloudinaryAt("s", signer.SHA1, 0, now), body: `{}`, ts: "soon", sig: sign(`{}`, "soon", "s", signer.SHA1), wantMsgContain: "Unix time"},
		{name: "no signature", c: cloudinaryAt("s", signer.SHA1, 0, now), body: `{}`, ts: tsAt(0), sig: "", wantMsgContain: "required"},
		{name: "no timestamp", c: cloudinaryAt("s", signer.SHA1, 0, now), body: `{}`, ts: "", sig: sign(`{}`, "", "s", signer.SHA1), wantMsgContain: "required"},
		{name: "no secret configured", c: cloudinaryAt("", signer.SHA1, 0, now), body: `{}`, ts: tsAt(0), sig: sign(`{}`, tsAt(0), "", signer.SHA1), wantMsgContain: "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.verifyNotification([]byte(tc.body), tc.ts, tc.sig)
			if tc.wantValid {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e, ok := apierror.As(err)
			if !ok || e.Code != apierror.CodeUnauthorized {
				t.Fatalf("err = %v, want unauthorized", err)
			}
			if !strings.Contains(e.Message, tc.wantMsgContain) {
				t.Errorf("message %q does not say %q", e.Message, tc.wantMsgContain)
			}
		})
	}
}

func TestCloudinaryOwnerOf(t *testing.T) {
	c := NewCloudinary(CloudinarySettings{Folder: "uploads/app"}, nil)
	for _, tc := range []struct {
		publicID string
		owner    string // "" for none
	}{
		{"uploads/app/alice/abc123", "alice"},
		{"uploads/app/" + UserSegment("bob@example.com") + "/abc123", "bob@example.com"},
		{"uploads/app/" + UserSegment("ユーザー/1") + "/x", "ユーザー/1"},
		// Anything deeper than <unique> is still the user's folder.
		{"uploads/app/alice/sub/abc", "alice"},
		{"uploads/app/alice/", ""},
		{"uploads/app/alice", ""},
		{"uploads/alice/abc", ""},
		{"uploads/appx/alice/abc", ""},
		{"other/app/alice/abc", ""},
		{"uploads/app//abc", ""},
		// Not the canonical segment of any user: upper-case base32 (of
		// "bob"), and "alice" spelt encoded though it is plain.
		{"uploads/app/_MJXWE/abc", ""},
		{"uploads/app/_mfwgsy3f/abc", ""},
		{"uploads/app/_/abc", ""},
	} {
		owner, ok := c.ownerOf(tc.publicID)
		if ok != (tc.owner != "") || owner != tc.owner {
			t.Errorf("ownerOf(%q) = %q, %v; want %q", tc.publicID, owner, ok, tc.owner)
		}
	}
}

// The vector's body, a realistic upload notification with numbers, nested
// URLs and fields the broker does not know, decodes; the owner comes from
// its public ID.
func TestDecodeCloudinaryNotificationN2(t *testing.T) {
	var n cloudinaryNotification
	if err := decodeNotification([]byte(n2Body), &n); err != nil {
		t.Fatal(err)
	}
	if n.NotificationType != "upload" || n.PublicID != "user-uploads/42/avatar_42" || n.ResourceType != "image" || n.Type != "upload" {
		t.Fatalf("decoded %+v", n)
	}
	c := NewCloudinary(CloudinarySettings{Folder: "user-uploads"}, nil)
	if owner, ok := c.ownerOf(n.PublicID); !ok || owner != "42" {
		t.Errorf("owner = %q, %v; want 42", owner, ok)
	}
}

func TestDecodeNotificationRefusesWhatIsNotAnObject(t *testing.T) {
	for _, body := range []string{``, `null`, `[]`, `"upload"`, `{"public_id":`, `{"public_id":7}`, `{"resources":{}}`} {
		var n cloudinaryNotification
		err := decodeNotification([]byte(body), &n)
		if !apierror.HasCode(err, apierror.CodeInvalidRequest) {
			t.Errorf("%q: err = %v, want invalid_request", body, err)
		}
	}
}

func TestLastingRefusal(t *testing.T) {
	for _, tc := range []struct {
		err     error
		lasting bool
	}{
		{apierror.Forbidden("not yours"), true},
		{apierror.New(apierror.CodeConflict, "someone else's"), true},
		{apierror.New(apierror.CodeUploadNotFound, "gone"), true},
		{apierror.New(apierror.CodeInvalidEvidence, "bad"), true},
		{apierror.InvalidRequest("bad id"), true},
		// Worth a retry: the provider or the database may be back.
		{apierror.New(apierror.CodeProviderUnavailable, "down"), false},
		{apierror.New(apierror.CodeUnavailable, "db down"), false},
		{errors.New("a bug"), false},
	} {
		if _, got := lastingRefusal(tc.err); got != tc.lasting {
			t.Errorf("lastingRefusal(%v) = %v, want %v", tc.err, got, tc.lasting)
		}
	}
}

// Refusals come before any use of the store, which these services lack:
// a forged or unconfigured delivery touches nothing.
func TestWebhooksRefuseBeforeTouchingAnything(t *testing.T) {
	s := &Service{}
	if _, err := s.CloudinaryWebhook(t.Context(), []byte(`{}`), "1", "x"); !apierror.HasCode(err, apierror.CodeNotFound) {
		t.Errorf("Cloudinary not configured: %v", err)
	}
	if _, err := s.UploadcareWebhook(t.Context(), []byte(`{}`), "v1=x"); !apierror.HasCode(err, apierror.CodeNotFound) {
		t.Errorf("Uploadcare not configured: %v", err)
	}
	s.Uploadcare = NewUploadcare(UploadcareSettings{PublicKey: "pk", SecretKey: "sk"}, nil)
	body := []byte(`{"hook":{"event":"file.uploaded"}}`)
	if _, err := s.UploadcareWebhook(t.Context(), body, signer.SignUploadcareWebhook("anything", body)); !apierror.HasCode(err, apierror.CodeUnauthorized) {
		t.Errorf("no webhook secret: %v", err)
	}
	s.Uploadcare = NewUploadcare(UploadcareSettings{PublicKey: "pk", SecretKey: "sk", WebhookSecret: "whs"}, nil)
	if _, err := s.UploadcareWebhook(t.Context(), body, signer.SignUploadcareWebhook("other", body)); !apierror.HasCode(err, apierror.CodeUnauthorized) {
		t.Errorf("wrong secret: %v", err)
	}
	s.Cloudinary = cloudinaryAt("secret", signer.SHA1, 0, time.Now())
	ts := unixString(time.Now().Add(-3 * time.Hour))
	if _, err := s.CloudinaryWebhook(t.Context(), []byte(`{}`), ts, signer.SignCloudinaryNotification([]byte(`{}`), ts, "secret", signer.SHA1)); !apierror.HasCode(err, apierror.CodeUnauthorized) {
		t.Errorf("stale: %v", err)
	}
}
