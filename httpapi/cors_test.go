package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/httpapi"
)

const (
	appOrigin   = "https://app.example.com"
	otherOrigin = "https://evil.example.net"
)

func preflight(o *opsServer, path, origin string) response {
	o.t.Helper()
	return o.request("OPTIONS", path, "", nil, map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization, content-type",
	})
}

func corsHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	return out
}

func TestCORSAllowedOrigin(t *testing.T) {
	o := newOpsServer(t, func(d *httpapi.Deps) { d.CORSOrigins = []string{"http://localhost:5173", appOrigin} })

	r := preflight(o, "/save-metadata", appOrigin)
	if r.Status != http.StatusNoContent {
		t.Errorf("preflight: status %d, want 204", r.Status)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != appOrigin {
		t.Errorf("preflight: Allow-Origin %q, want %q", got, appOrigin)
	}
	methods := r.Header.Get("Access-Control-Allow-Methods")
	for _, m := range []string{"GET", "POST", "DELETE"} {
		if !strings.Contains(methods, m) {
			t.Errorf("preflight: Allow-Methods %q lacks %s", methods, m)
		}
	}
	allowHeaders := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type"} {
		if !strings.Contains(allowHeaders, h) {
			t.Errorf("preflight: Allow-Headers %q lacks %s", allowHeaders, h)
		}
	}
	if r.Header.Get("Access-Control-Max-Age") == "" {
		t.Errorf("preflight: no Max-Age")
	}
	if r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight allows credentials; the API takes bearer tokens, not cookies")
	}

	// The real request, an error included, carries the permission so the
	// page can read the answer, its request id and Retry-After.
	r = o.request("GET", "/files", "", nil, map[string]string{"Origin": appOrigin})
	if r.Status != 401 {
		t.Fatalf("GET /files without a token: %d", r.Status)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != appOrigin {
		t.Errorf("401: Allow-Origin %q, want %q", got, appOrigin)
	}
	expose := r.Header.Get("Access-Control-Expose-Headers")
	if !strings.Contains(expose, "X-Request-ID") || !strings.Contains(expose, "Retry-After") {
		t.Errorf("Expose-Headers %q, want X-Request-ID and Retry-After", expose)
	}
	if !slices.Contains(r.Header.Values("Vary"), "Origin") {
		t.Errorf("Vary %q lacks Origin", r.Header.Values("Vary"))
	}
	r = o.request("GET", "/healthz", "", nil, map[string]string{"Origin": "http://localhost:5173"})
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:5173" {
		t.Errorf("second origin: Allow-Origin %q", got)
	}
}

func TestCORSOtherOriginGetsNoHeaders(t *testing.T) {
	o := newOpsServer(t, func(d *httpapi.Deps) { d.CORSOrigins = []string{appOrigin} })
	for _, origin := range []string{otherOrigin, appOrigin + ".evil.net", "http://app.example.com", "null"} {
		r := preflight(o, "/save-metadata", origin)
		if h := corsHeaders(r.Header); len(h) > 0 {
			t.Errorf("preflight from %s: CORS headers %v", origin, h)
		}
		r = o.request("GET", "/healthz", "", nil, map[string]string{"Origin": origin})
		if r.Status != 200 {
			t.Errorf("GET /healthz from %s: %d", origin, r.Status)
		}
		if h := corsHeaders(r.Header); len(h) > 0 {
			t.Errorf("GET from %s: CORS headers %v", origin, h)
		}
		// Vary all the same: a cache must not serve this answer to the
		// allowed origin, or the allowed origin's answer to this one.
		if !slices.Contains(r.Header.Values("Vary"), "Origin") {
			t.Errorf("GET from %s: Vary %q lacks Origin", origin, r.Header.Values("Vary"))
		}
	}
}

func TestCORSUnsetSendsNothing(t *testing.T) {
	o := newOpsServer(t, nil)
	r := preflight(o, "/save-metadata", appOrigin)
	if h := corsHeaders(r.Header); len(h) > 0 {
		t.Errorf("preflight with CORS_ORIGINS unset: %v", h)
	}
	r = o.request("GET", "/healthz", "", nil, map[string]string{"Origin": appOrigin})
	if h := corsHeaders(r.Header); len(h) > 0 {
		t.Errorf("GET with CORS_ORIGINS unset: %v", h)
	}
}

func TestCORSWildcard(t *testing.T) {
	o := newOpsServer(t, func(d *httpapi.Deps) { d.CORSOrigins = []string{"*"} })
	r := preflight(o, "/files/x", otherOrigin)
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != otherOrigin {
		t.Errorf("preflight with *: %d, Allow-Origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
}

// The emulator `broker dev` mounts answers CORS itself, as the providers
// do; the broker's policy must not touch it.
func TestCORSLeavesEmulatorAlone(t *testing.T) {
	o := newOpsServer(t, func(d *httpapi.Deps) {
		d.CORSOrigins = []string{appOrigin}
		d.Mount = func(e *echo.Echo) {
			e.Any("/emulator/*", func(c echo.Context) error {
				c.Response().Header().Set("Access-Control-Allow-Origin", "*")
				c.Response().Header().Set("X-Emulator", "yes")
				return c.NoContent(http.StatusOK)
			})
		}
	})
	r := preflight(o, "/emulator/cloudinary/v1_1/demo/image/upload", otherOrigin)
	if r.Header.Get("X-Emulator") != "yes" || r.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("the emulator's preflight was answered by the broker: %d %v", r.Status, r.Header)
	}
	if slices.Contains(r.Header.Values("Vary"), "Origin") {
		t.Errorf("the broker's CORS ran on an emulator path")
	}
}
