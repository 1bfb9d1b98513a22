package metadata_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/internal/testdb"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
)

const (
	fwCloud     = "fuzzcloud"
	fwKey       = "123456789012345"
	fwSecret    = "fuzz_api_secret"
	fwUCPublic  = "fuzzpublickey"
	fwUCSecret  = "fuzz-uploadcare-secret"
	fwUCWebhook = "fuzz-uploadcare-webhook-secret"
)

// webhookService is the broker's use case on a real database, with both
// providers pointing at an emulator that holds no asset at all.
func webhookService(f *testing.F) (*metadata.Service, *db.Postgres) {
	ctx := context.Background()
	url := testdb.PostgresURL(f)
	if err := db.MigratePostgres(ctx, url); err != nil {
		f.Fatal(err)
	}
	store, err := db.OpenPostgres(ctx, url)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(store.Close)
	em, err := emulator.New(emulator.Options{
		Cloudinary:              &emulator.CloudinaryAccount{CloudName: fwCloud, APIKey: fwKey, APISecret: fwSecret},
		Uploadcare:              &emulator.UploadcareProject{PublicKey: fwUCPublic, SecretKey: fwUCSecret},
		NotificationRetryDelays: []time.Duration{},
	})
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(em.Handler())
	f.Cleanup(srv.Close)
	hc := &http.Client{Timeout: 10 * time.Second}
	cld := metadata.NewCloudinary(metadata.CloudinarySettings{
		CloudName: fwCloud, APIKey: fwKey, APISecret: fwSecret, UploadPrefix: srv.URL + "/cloudinary",
		Folder: "uploads", Algorithm: signer.SHA1, TTL: 30 * time.Minute,
	}, &cloudinary.Client{
		CloudName: fwCloud, APIKey: fwKey, APISecret: fwSecret, UploadPrefix: srv.URL + "/cloudinary",
		DeliveryURL: srv.URL + "/cloudinary", Algorithm: signer.SHA1, HTTP: hc,
	})
	uc := metadata.NewUploadcare(metadata.UploadcareSettings{
		PublicKey: fwUCPublic, SecretKey: fwUCSecret, UploadURL: srv.URL + "/uploadcare/upload",
		TTL: 30 * time.Minute, WebhookSecret: fwUCWebhook,
	}, &uploadcare.Client{
		PublicKey: fwUCPublic, SecretKey: fwUCSecret, HTTP: hc,
		UploadURL: srv.URL + "/uploadcare/upload", APIURL: srv.URL + "/uploadcare/api", CDNURL: srv.URL + "/uploadcare/cdn",
	})
	return &metadata.Service{Store: store, Cloudinary: cld, Uploadcare: uc}, store
}

// FuzzWebhookVerification delivers arbitrary notifications to both webhook
// use cases, in four ways chosen by mode:
//
//	0: with the fuzzer's own signature (a forgery): always 401;
//	1: signed properly, then the body changed by one byte: always 401;
//	2: signed properly now (the provider, or its secret's holder, sending
//	   odd payloads): never a panic, never a 500-class bug, and never a
//	   record, since the emulator holds no asset to prove one with;
//	3: Cloudinary, signed properly with the fuzzer's timestamp: 401
//	   unless it is decimal seconds within the freshness window.
//
// Seeds live in testdata/fuzz/FuzzWebhookVerification.
func FuzzWebhookVerification(f *testing.F) {
	svc, store := webhookService(f)
	f.Add(true, []byte(`{"notification_type":"upload","public_id":"uploads/alice/x","resource_type":"image","type":"upload"}`), "1700000000", "abc", uint8(0))
	f.Add(true, []byte(`{"notification_type":"delete","resources":[{"public_id":"uploads/alice/x"}]}`), "", "", uint8(2))
	f.Add(true, []byte(`{"public_id":"uploads/_mfrgg/x"}`), "", "", uint8(2))
	f.Add(true, []byte(`{"notification_type":"upload","public_id":"uploads/alice/../bob/x"}`), "", "", uint8(1))
	f.Add(true, []byte(`{}`), "1e9", "", uint8(3))
	f.Add(true, []byte(`{}`), "-1", "", uint8(3))
	f.Add(false, []byte(`{"hook":{"event":"file.uploaded","project_pub_key":"fuzzpublickey"},"data":{"uuid":"00000000-0000-4000-8000-000000000000","metadata":{"broker_intent":"v1.alice.1.00.00"}}}`), "", "", uint8(2))
	f.Add(false, []byte(`{"hook":{"event":"file.deleted"},"data":{"uuid":"../../x"}}`), "", "v1=00", uint8(0))
	f.Add(false, []byte(`{"event":"file.uploaded","data":{"metadata":{"broker_intent":7}}}`), "", "", uint8(2))
	f.Add(false, []byte(`[]`), "", "", uint8(1))

	f.Fuzz(func(t *testing.T, cld bool, body []byte, timestamp, signature string, mode uint8) {
		ctx := context.Background()
		now := strconv.FormatInt(time.Now().Unix(), 10)
		mode %= 4
		if mode == 3 && !cld {
			mode = 2
		}
		deliverBody := body
		switch mode {
		case 0:
			if validSignature(cld, body, timestamp) == signature {
				return // the fuzzer forged a digest; it will not
			}
		case 1:
			if cld {
				timestamp = now
			}
			signature = validSignature(cld, body, timestamp)
			deliverBody = append(append([]byte{}, body...), ' ')
		case 2:
			timestamp = now
			signature = validSignature(cld, body, timestamp)
		case 3:
			signature = validSignature(cld, body, timestamp)
		}
		before := countFiles(t, store)

		var res metadata.WebhookResult
		var err error
		if cld {
			res, err = svc.CloudinaryWebhook(ctx, deliverBody, timestamp, signature)
		} else {
			res, err = svc.UploadcareWebhook(ctx, deliverBody, signature)
		}

		e, isAPI := apierror.As(err)
		switch {
		case err != nil && !isAPI:
			t.Fatalf("mode %d: error %v (%T) is not an *apierror.Error: it would be a 500", mode, err, err)
		case err != nil && e.Code == apierror.CodeInternal:
			t.Fatalf("mode %d: internal error: %v", mode, err)
		case mode < 2 && (err == nil || e.Code != apierror.CodeUnauthorized):
			t.Fatalf("mode %d: a forged or mangled notification got %+v %v, want unauthorized", mode, res, err)
		case mode == 2 && err != nil && e.Code != apierror.CodeInvalidRequest:
			t.Fatalf("a signed notification got %v, want a result or invalid_request", err)
		case mode == 3 && freshness(timestamp) < 0 && (err == nil || e.Code != apierror.CodeUnauthorized):
			t.Fatalf("timestamp %q outside the window got %+v %v, want unauthorized", timestamp, res, err)
		case mode == 3 && freshness(timestamp) > 0 && err != nil && e.Code == apierror.CodeUnauthorized:
			t.Fatalf("timestamp %q inside the window was refused: %v", timestamp, err)
		}
		if res.Outcome == metadata.WebhookCreated || countFiles(t, store) != before {
			t.Fatalf("mode %d: a notification recorded a file the provider does not have: %+v", mode, res)
		}
	})
}

// freshness judges X-Cld-Timestamp by the documented window: decimal
// seconds, at most 2 h old (the default WebhookMaxAge) and 5 min ahead.
// It answers 1 inside, -1 outside, and 0 within 2 s of either edge, where
// the clock moving during a run could tip the verdict.
func freshness(ts string) int {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return -1
	}
	const slack = 2 * time.Second
	age := time.Since(time.Unix(n, 0))
	maxAge, ahead := metadata.DefaultCloudinaryWebhookMaxAge, -5*time.Minute
	switch {
	case age < maxAge-slack && age > ahead+slack:
		return 1
	case age > maxAge+slack || age < ahead-slack:
		return -1
	}
	return 0
}

func validSignature(cld bool, body []byte, timestamp string) string {
	if cld {
		return signer.SignCloudinaryNotification(body, timestamp, fwSecret, signer.SHA1)
	}
	return signer.SignUploadcareWebhook(fwUCWebhook, body)
}

func countFiles(t *testing.T, store *db.Postgres) int {
	var n int
	if err := store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM files").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
