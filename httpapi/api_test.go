package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/signer"
)

func TestEveryAPIEndpointNeedsAToken(t *testing.T) {
	s := newStack(t)
	for _, ep := range []struct{ method, path string }{
		{"GET", "/generate-signature"},
		{"POST", "/save-metadata"},
		{"GET", "/files"},
		{"GET", "/files/0190b1c2-0000-7000-8000-000000000000"},
		{"DELETE", "/files/0190b1c2-0000-7000-8000-000000000000"},
	} {
		r := s.do(ep.method, ep.path, "", "")
		if r.Status != 401 || r.code() != "unauthorized" || r.Body["success"] != false || r.Body["error"] == "" {
			t.Errorf("%s %s: %d %s", ep.method, ep.path, r.Status, r.Raw)
		}
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: WWW-Authenticate = %q", ep.method, ep.path, r.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestGenerateSignatureCloudinary(t *testing.T) {
	s := newStack(t)
	r := s.do("GET", "/generate-signature", "alice@example.com", "")
	if r.Status != 200 || r.Body["success"] != true || r.Body["provider"] != "cloudinary" {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	params := map[string]string{}
	for k, v := range r.Body["params"].(map[string]any) {
		params[k] = v.(string)
	}
	wantPrefix := "uploads/" + metadata.UserSegment("alice@example.com") + "/"
	if !strings.HasPrefix(params["public_id"], wantPrefix) {
		t.Errorf("public_id %q outside %q", params["public_id"], wantPrefix)
	}
	if params["timestamp"] != fmt.Sprint(int64(r.Body["timestamp"].(float64))) {
		t.Errorf("timestamp in params %q differs from %v", params["timestamp"], r.Body["timestamp"])
	}
	if signer.VerifyCloudinaryUpload(params, apiSecret, r.Body["signature"].(string)) == 0 {
		t.Error("signature does not cover exactly params")
	}
	if r.Body["resource_type"] != "auto" || !strings.HasSuffix(r.Body["upload_url"].(string), "/v1_1/democloud/auto/upload") {
		t.Errorf("resource_type/upload_url: %v %v", r.Body["resource_type"], r.Body["upload_url"])
	}
	expires, err := time.Parse(time.RFC3339, r.Body["expires_at"].(string))
	if err != nil || time.Until(expires) < 29*time.Minute || time.Until(expires) > 31*time.Minute {
		t.Errorf("expires_at %v is not 30 minutes away", r.Body["expires_at"])
	}
	again := s.do("GET", "/generate-signature", "alice@example.com", "")
	if again.Body["params"].(map[string]any)["public_id"] == params["public_id"] {
		t.Error("two signatures share a public ID")
	}
	for _, q := range []string{"?provider=imgur", "?resource_type=pdf", "?provider=uploadcare"} {
		if r := s.do("GET", "/generate-signature"+q, "alice", ""); r.Status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s: %d %s", q, r.Status, r.Raw)
		}
	}
}

func TestSaveMetadataCloudinary(t *testing.T) {
	s := newStack(t)
	full := s.uploadSigned("alice")
	var up map[string]any
	_ = json.Unmarshal([]byte(full), &up)

	r := s.do("POST", "/save-metadata", "alice", full)
	if r.Status != 201 {
		t.Fatalf("first save: %d %s", r.Status, r.Raw)
	}
	f := r.Body["file"].(map[string]any)
	if f["provider_id"] != up["public_id"] || f["user_id"] != "alice" || f["width"] != 1.0 || f["format"] != "png" ||
		f["mime_type"] != "image/png" || f["url"] != up["secure_url"] || f["original_filename"] != "cat" {
		t.Errorf("recorded file: %v", f)
	}
	if r2 := s.do("POST", "/save-metadata", "alice", full); r2.Status != 200 || r2.Body["file"].(map[string]any)["id"] != f["id"] {
		t.Errorf("second save: %d %s", r2.Status, r2.Raw)
	}

	// The seed guide's three fields, proven through the Admin API.
	other := s.uploadSigned("alice")
	three := patch(t, other, nil)
	var o map[string]any
	_ = json.Unmarshal([]byte(other), &o)
	three = fmt.Sprintf(`{"public_id":%q,"secure_url":%q,"resource_type":"image"}`, o["public_id"], o["secure_url"])
	if r := s.do("POST", "/save-metadata", "alice", three); r.Status != 201 || r.Body["file"].(map[string]any)["bytes"] != float64(len(pngBytes)) {
		t.Errorf("three-field save: %d %s", r.Status, r.Raw)
	}
	if n := s.countFiles(); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}

	fresh := s.uploadSigned("alice")
	refusals := []struct {
		name, user, body string
		status           int
		code             string
	}{
		{"forged response signature", "alice", patch(t, fresh, map[string]any{"signature": strings.Repeat("0", 40)}), 422, "invalid_evidence"},
		{"forged version", "alice", patch(t, fresh, map[string]any{"version": 1}), 422, "invalid_evidence"},
		{"another user's public ID", "bob", fresh, 403, "forbidden"},
		{"secure_url elsewhere", "alice", patch(t, fresh, map[string]any{"secure_url": "https://evil.example.com/a.png"}), 422, "invalid_evidence"},
		{"format changed", "alice", patch(t, fresh, map[string]any{"format": "gif"}), 422, "invalid_evidence"},
		{"asset that does not exist", "alice", fmt.Sprintf(`{"public_id":"uploads/alice/nope","secure_url":"x","resource_type":"image"}`), 422, "upload_not_found"},
		{"version without signature", "alice", patch(t, fresh, map[string]any{"signature": nil}), 400, "invalid_request"},
		{"public_id of the wrong type", "alice", `{"public_id": 42}`, 400, "invalid_request"},
		{"missing public_id", "alice", `{"secure_url":"https://x"}`, 400, "invalid_request"},
		{"malformed JSON", "alice", `{"public_id":`, 400, "invalid_request"},
		{"not an object", "alice", `["uploads/alice/x"]`, 400, "invalid_request"},
		{"unknown provider", "alice", `{"provider":"imgur","public_id":"x"}`, 400, "invalid_request"},
		{"resource_type auto", "alice", patch(t, fresh, map[string]any{"resource_type": "auto"}), 400, "invalid_request"},
		{"type private", "alice", patch(t, fresh, map[string]any{"type": "private"}), 422, "invalid_evidence"},
		{"public_id with a path trick", "alice", `{"public_id":"uploads/alice/../bob/x","resource_type":"image"}`, 422, "upload_not_found"},
	}
	for _, tc := range refusals {
		r := s.do("POST", "/save-metadata", tc.user, tc.body)
		if r.Status != tc.status || r.code() != tc.code {
			t.Errorf("%s: got %d %s, want %d %s", tc.name, r.Status, r.Raw, tc.status, tc.code)
		}
	}
	if n := s.countFiles(); n != 2 {
		t.Errorf("refused requests left rows: %d, want 2", n)
	}
}

func TestSaveMetadataConflictWithAnotherOwner(t *testing.T) {
	s := newStack(t)
	up := s.uploadSigned("alice")
	var m map[string]any
	_ = json.Unmarshal([]byte(up), &m)
	// A record for the same asset owned by someone else (e.g. imported from
	// a guide's table) makes alice's save a conflict, not a second owner.
	_, _, err := s.Store.SaveFile(context.Background(), metadata.File{
		Provider: "cloudinary", ProviderID: m["public_id"].(string), URL: m["secure_url"].(string),
		ResourceType: "image", UserID: "legacy-owner",
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/save-metadata", "alice", up); r.Status != 409 || r.code() != "conflict" {
		t.Errorf("got %d %s, want 409 conflict", r.Status, r.Raw)
	}
}

func TestFilesPagesFiltersAndScoping(t *testing.T) {
	s := newStack(t)
	var ids []string
	for i := 0; i < 5; i++ {
		r := s.do("POST", "/save-metadata", "alice", s.uploadSigned("alice"))
		ids = append(ids, r.Body["file"].(map[string]any)["id"].(string))
	}
	bobs := s.do("POST", "/save-metadata", "bob", s.uploadSigned("bob")).Body["file"].(map[string]any)["id"].(string)

	var seen []string
	cursor := ""
	for page := 0; page < 5; page++ {
		r := s.do("GET", "/files?limit=2&cursor="+cursor, "alice", "")
		if r.Status != 200 {
			t.Fatalf("page %d: %d %s", page, r.Status, r.Raw)
		}
		for _, f := range r.Body["files"].([]any) {
			seen = append(seen, f.(map[string]any)["id"].(string))
		}
		next, _ := r.Body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 5 {
		t.Fatalf("listed %d files over the pages, want 5: %v", len(seen), seen)
	}
	for i := range seen { // newest first
		if seen[i] != ids[len(ids)-1-i] {
			t.Errorf("order: got %v, want reverse of %v", seen, ids)
			break
		}
	}
	if r := s.do("GET", "/files?provider=cloudinary&resource_type=video", "alice", ""); r.Status != 200 || len(r.Body["files"].([]any)) != 0 {
		t.Errorf("resource_type filter: %s", r.Raw)
	}
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=!!!", "cursor=bm9wZQ", "provider=imgur", "resource_type=pdf"} {
		if r := s.do("GET", "/files?"+q, "alice", ""); r.Status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s: %d %s", q, r.Status, r.Raw)
		}
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := s.do(m, "/files/"+bobs, "alice", ""); r.Status != 404 || r.code() != "not_found" {
			t.Errorf("%s another user's file: %d %s", m, r.Status, r.Raw)
		}
		if r := s.do(m, "/files/not-a-uuid", "alice", ""); r.Status != 404 || r.code() != "not_found" {
			t.Errorf("%s a malformed id: %d %s", m, r.Status, r.Raw)
		}
	}
	if r := s.do("GET", "/files/"+bobs, "bob", ""); r.Status != 200 {
		t.Errorf("owner's GET: %d %s", r.Status, r.Raw)
	}
}

func TestDeleteKeepsTheRecordWhenTheProviderFails(t *testing.T) {
	s := newStack(t)
	up := s.uploadSigned("alice")
	f := s.do("POST", "/save-metadata", "alice", up).Body["file"].(map[string]any)
	id, url := f["id"].(string), f["url"].(string)

	s.Emu.SetFaults(emulator.Faults{FailStatus: 500})
	if r := s.do("DELETE", "/files/"+id, "alice", ""); r.Status != 502 || r.code() != "provider_unavailable" {
		t.Fatalf("delete with the provider down: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/files/"+id, "alice", ""); r.Status != 200 {
		t.Fatalf("record gone after a failed provider delete: %d", r.Status)
	}
	s.Emu.SetFaults(emulator.Faults{})
	if r := s.do("DELETE", "/files/"+id, "alice", ""); r.Status != 200 || r.Body["success"] != true {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/files/"+id, "alice", ""); r.Status != 404 {
		t.Errorf("record still there: %d", r.Status)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("provider still delivers the deleted asset: %d", resp.StatusCode)
	}
}

func TestSaveAnswers502WhenTheProviderIsDown(t *testing.T) {
	s := newStack(t)
	up := s.uploadSigned("alice")
	var m map[string]any
	_ = json.Unmarshal([]byte(up), &m)
	three := fmt.Sprintf(`{"public_id":%q,"secure_url":%q,"resource_type":"image"}`, m["public_id"], m["secure_url"])
	for _, f := range []emulator.Faults{{FailStatus: 503}, {CloseConn: true}, {Delay: 3 * time.Second}} {
		s.Emu.SetFaults(f)
		if r := s.do("POST", "/save-metadata", "alice", three); r.Status != 502 || r.code() != "provider_unavailable" {
			t.Errorf("%+v: %d %s", f, r.Status, r.Raw)
		}
	}
	if n := s.countFiles(); n != 0 {
		t.Errorf("%d rows after provider failures", n)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	s := newStack(t)
	if r := s.do("GET", "/nope", "", ""); r.Status != 404 || r.code() != "not_found" {
		t.Errorf("unknown route: %d %s", r.Status, r.Raw)
	}
	if r := s.do("PUT", "/files", "alice", ""); r.Status != 405 || r.code() != "invalid_request" {
		t.Errorf("wrong method: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/healthz", "", ""); r.Status != 200 || r.Body["success"] != true {
		t.Errorf("healthz: %d %s", r.Status, r.Raw)
	}
	if r := s.do("GET", "/readyz", "", ""); r.Status != 200 {
		t.Errorf("readyz: %d %s", r.Status, r.Raw)
	}
}
