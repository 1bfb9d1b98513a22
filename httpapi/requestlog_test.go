package httpapi_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestRequestIDIsSentBackAndLogged(t *testing.T) {
	o := newOpsServer(t, nil)
	cases := []struct {
		name, sent string
		kept       bool
	}{
		{"none", "", false},
		{"uuid", "0b7c6a1e-3f0e-4a59-9d3c-2f1b8b4c5d6e", true},
		{"trace id", "req_01HZX3K8P2:edge-7.a", true},
		{"too long", strings.Repeat("a", 65), false},
		{"markup", "<script>alert(1)</script>", false},
		{"spaces", "two words", false},
		{"quote", `a"b`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{}
			if tc.sent != "" {
				header["X-Request-ID"] = tc.sent
			}
			r := o.request("GET", "/healthz", "", nil, header)
			got := r.Header.Get("X-Request-ID")
			switch {
			case tc.kept && got != tc.sent:
				t.Errorf("X-Request-ID = %q, want the caller's %q", got, tc.sent)
			case !tc.kept:
				if _, err := uuid.Parse(got); err != nil {
					t.Errorf("X-Request-ID = %q, want a fresh UUID in place of %q", got, tc.sent)
				}
			}
			found := false
			for _, rec := range o.Logs.records(t, "request") {
				if rec["request_id"] == got {
					found = true
				}
			}
			if !found {
				t.Errorf("no request log line carries request_id %q:\n%s", got, o.Logs.String())
			}
			if tc.sent != "" && !tc.kept && strings.Contains(o.Logs.String(), tc.sent) {
				t.Errorf("the refused request id %q reached the log", tc.sent)
			}
		})
	}
}

// The log line names the route pattern, the status and the user; never the
// path's ids, the query string or any header.
func TestRequestLogLine(t *testing.T) {
	o := newOpsServer(t, nil)
	id := uuid.NewString()
	tok := tokenFor(t, "alice")
	r := o.request("GET", "/files/"+id+"?cursor=query-secret-value", "", nil, map[string]string{"Authorization": "Bearer " + tok})
	if r.Status != 404 {
		t.Fatalf("GET /files/{id}: %d %s", r.Status, r.Raw)
	}
	var line map[string]any
	for _, rec := range o.Logs.records(t, "request") {
		if rec["request_id"] == r.Header.Get("X-Request-ID") {
			line = rec
		}
	}
	if line == nil {
		t.Fatalf("no log line for the request:\n%s", o.Logs.String())
	}
	for k, want := range map[string]any{"method": "GET", "route": "/files/:id", "status": float64(404), "user": "alice", "level": "INFO"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Errorf("log line has no duration: %v", line)
	}
	logs := o.Logs.String()
	for _, secret := range []string{id, "query-secret-value", tok} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}

	// A path no route serves is logged as unmatched, not by its path.
	o.get("/no/such/"+id, "")
	found := false
	for _, rec := range o.Logs.records(t, "request") {
		if rec["route"] == "unmatched" && rec["status"] == float64(404) {
			found = true
		}
	}
	if !found {
		t.Errorf("no unmatched 404 in the log:\n%s", o.Logs.String())
	}
}
