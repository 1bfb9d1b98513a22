package reliability

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/signer"
)

// cldNotification signs body as Cloudinary does, with timestamp ts.
func cldNotification(body string, ts int64) []string {
	t := fmt.Sprint(ts)
	return []string{"X-Cld-Timestamp", t, "X-Cld-Signature", signer.SignCloudinaryNotification([]byte(body), t, cldAPISecret, signer.SHA1)}
}

// ucNotification signs body as Uploadcare does.
func ucNotification(body string) []string {
	return []string{"X-Uc-Signature", signer.SignUploadcareWebhook(ucWebhookSecret, []byte(body))}
}

// webhookBadCases are the corpus's forged, mangled and broken provider
// notifications. They name an asset under alice's folder, so a forgery
// that got through would change the database.
func webhookBadCases(t *testing.T) []badCase {
	t.Helper()
	now := time.Now().Unix()
	upload := `{"notification_type":"upload","public_id":"uploads/alice/forged","resource_type":"image","type":"upload","version":1}`
	ucUpload := `{"hook":{"event":"file.uploaded","project_pub_key":"` + ucPublicKey + `"},"data":{"uuid":"00000000-0000-4000-8000-000000000000","metadata":{}}}`
	good := cldNotification(upload, now)
	wrongSecret := []string{"X-Cld-Timestamp", fmt.Sprint(now), "X-Cld-Signature", signer.SignCloudinaryNotification([]byte(upload), fmt.Sprint(now), "not-the-secret", signer.SHA1)}
	ucForged := []string{"X-Uc-Signature", "v1=" + strings.Repeat("0", 64)}
	ucOther := []string{"X-Uc-Signature", signer.SignUploadcareWebhook("another-secret", []byte(ucUpload))}
	js := func(s string) []byte { return []byte(s) }
	const ct = "application/json"
	return []badCase{
		{name: "Cloudinary webhook unsigned", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook signed with another secret", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: wrongSecret, status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook body changed after signing", method: "POST", path: "/webhooks/cloudinary", body: js(strings.Replace(upload, "forged", "forgee", 1)), ctype: ct, header: good, status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook timestamp changed after signing", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: []string{good[0], fmt.Sprint(now + 1), good[2], good[3]}, status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook signature truncated", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: []string{good[0], good[1], good[2], good[3][:20]}, status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook signature with SQL", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: []string{good[0], good[1], good[2], "' OR 1=1 --"}, status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook stale", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: cldNotification(upload, now-3*3600), status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook from the future", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: cldNotification(upload, now+3600), status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook timestamp in milliseconds", method: "POST", path: "/webhooks/cloudinary", body: js(upload), ctype: ct, header: cldNotification(upload, now*1000), status: 401, code: "unauthorized"},
		{name: "Cloudinary webhook signed, not JSON", method: "POST", path: "/webhooks/cloudinary", body: js("public_id=x"), ctype: ct, header: cldNotification("public_id=x", now), status: 400, code: "invalid_request"},
		{name: "Cloudinary webhook signed, truncated JSON", method: "POST", path: "/webhooks/cloudinary", body: js(upload[:40]), ctype: ct, header: cldNotification(upload[:40], now), status: 400, code: "invalid_request"},
		{name: "Cloudinary webhook signed, public_id a number", method: "POST", path: "/webhooks/cloudinary", body: js(`{"notification_type":"upload","public_id":5}`), ctype: ct, header: cldNotification(`{"notification_type":"upload","public_id":5}`, now), status: 400, code: "invalid_request"},
		{name: "Cloudinary webhook over the body limit", method: "POST", path: "/webhooks/cloudinary", body: js(`{"x":"` + strings.Repeat("x", 2<<20) + `"}`), ctype: ct, header: good, status: 413, code: "payload_too_large"},
		{name: "GET a webhook", method: "GET", path: "/webhooks/cloudinary", status: 405, code: "invalid_request"},
		{name: "Uploadcare webhook unsigned", method: "POST", path: "/webhooks/uploadcare", body: js(ucUpload), ctype: ct, status: 401, code: "unauthorized"},
		{name: "Uploadcare webhook zero signature", method: "POST", path: "/webhooks/uploadcare", body: js(ucUpload), ctype: ct, header: ucForged, status: 401, code: "unauthorized"},
		{name: "Uploadcare webhook signed with another secret", method: "POST", path: "/webhooks/uploadcare", body: js(ucUpload), ctype: ct, header: ucOther, status: 401, code: "unauthorized"},
		{name: "Uploadcare webhook signature without prefix", method: "POST", path: "/webhooks/uploadcare", body: js(ucUpload), ctype: ct, header: []string{"X-Uc-Signature", strings.TrimPrefix(ucNotification(ucUpload)[1], "v1=")}, status: 401, code: "unauthorized"},
		{name: "Uploadcare webhook signature inside a longer header", method: "POST", path: "/webhooks/uploadcare", body: js(ucUpload), ctype: ct, header: []string{"X-Uc-Signature", "x" + ucNotification(ucUpload)[1] + "x"}, status: 401, code: "unauthorized"},
		{name: "Uploadcare webhook body with a trailing space", method: "POST", path: "/webhooks/uploadcare", body: js(ucUpload + " "), ctype: ct, header: ucNotification(ucUpload), status: 401, code: "unauthorized"},
		{name: "Uploadcare webhook signed, array body", method: "POST", path: "/webhooks/uploadcare", body: js(`[]`), ctype: ct, header: ucNotification(`[]`), status: 400, code: "invalid_request"},
		{name: "Uploadcare webhook signed, data a string", method: "POST", path: "/webhooks/uploadcare", body: js(`{"hook":{"event":"file.uploaded"},"data":"x"}`), ctype: ct, header: ucNotification(`{"hook":{"event":"file.uploaded"},"data":"x"}`), status: 400, code: "invalid_request"},
		{name: "Uploadcare webhook signed, empty body", method: "POST", path: "/webhooks/uploadcare", ctype: ct, header: ucNotification(""), status: 400, code: "invalid_request"},
	}
}
