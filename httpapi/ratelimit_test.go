package httpapi_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/httpapi"
)

// badEvidence is a save that is refused (422) without a provider call, so
// it spends a token and nothing else.
const badEvidence = `{"public_id":"uploads/alice/x","version":1,"signature":"0000000000000000000000000000000000000000","resource_type":"image"}`

func (o *opsServer) save(user, body string) response {
	o.t.Helper()
	return o.request("POST", "/save-metadata", user, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

func TestRateLimit(t *testing.T) {
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	o := newOpsServer(t, func(d *httpapi.Deps) {
		d.RateLimitPerMinute = 2
		d.Now = clk.Now
	})
	sign := func(user string) response { return o.get("/generate-signature?provider=cloudinary", user) }

	for i := range 2 {
		if r := sign("alice"); r.Status != 200 {
			t.Fatalf("signature %d: %d %s", i+1, r.Status, r.Raw)
		}
	}
	r := sign("alice")
	if r.Status != 429 || r.code() != "rate_limited" || r.Body["success"] != false {
		t.Fatalf("3rd signature in a minute: %d %s, want 429 rate_limited", r.Status, r.Raw)
	}
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 30 {
		t.Fatalf("Retry-After %q, want whole seconds from 1 to 30 (2/min)", r.Header.Get("Retry-After"))
	}

	// Another user, and the same user's saves, are not held back.
	if r := sign("bob"); r.Status != 200 {
		t.Errorf("bob's signature: %d", r.Status)
	}
	if r := o.save("alice", badEvidence); r.Status != 422 {
		t.Errorf("alice's first save: %d %s, want 422 (refused on its merits, not limited)", r.Status, r.Raw)
	}
	// A request that fails authentication spends nothing and is 401.
	if r := o.get("/generate-signature", ""); r.Status != 401 {
		t.Errorf("no token: %d, want 401", r.Status)
	}

	clk.Advance(time.Duration(retry) * time.Second)
	if r := sign("alice"); r.Status != 200 {
		t.Errorf("after Retry-After: %d %s", r.Status, r.Raw)
	}

	// Saving has its own allowance: the bucket refilled to its two
	// tokens meanwhile; two saves, then 429.
	for i := range 2 {
		if r := o.save("alice", badEvidence); r.Status != 422 {
			t.Errorf("alice's save %d after the wait: %d", i+1, r.Status)
		}
	}
	if r := o.save("alice", badEvidence); r.Status != 429 || r.code() != "rate_limited" || r.Header.Get("Retry-After") == "" {
		t.Errorf("alice's save past the allowance: %d %s %q, want 429 with Retry-After", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	// POST /upload shares the save allowance.
	if r := o.request("POST", "/upload", "alice", strings.NewReader("x"), map[string]string{"Content-Type": "text/plain"}); r.Status != 429 {
		t.Errorf("POST /upload past the save allowance: %d, want 429", r.Status)
	}
	// Reading is never limited.
	for range 5 {
		if r := o.get("/files", "alice"); r.Status != 200 {
			t.Fatalf("GET /files: %d", r.Status)
		}
	}
}

func TestRateLimitOff(t *testing.T) {
	o := newOpsServer(t, func(d *httpapi.Deps) { d.RateLimitPerMinute = 0 })
	for i := range 50 {
		if r := o.get("/generate-signature", "alice"); r.Status != 200 {
			t.Fatalf("signature %d with the limit off: %d %s", i+1, r.Status, r.Raw)
		}
	}
}
