package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func serve(t *testing.T, opts Options, path string) *httptest.ResponseRecorder {
	t.Helper()
	e := echo.New()
	Register(e, opts)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestPage(t *testing.T) {
	rec := serve(t, Options{}, "/")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{"/generate-signature", "/save-metadata", "/files", "XMLHttpRequest", "upload.onprogress", "/demo/config.json", "uploadcare", "cloudinary"} {
		if !strings.Contains(body, want) {
			t.Errorf("page does not mention %s", want)
		}
	}
}

// externalAsset matches markup that loads something from another origin.
var externalAsset = regexp.MustCompile(`(?i)(<(script|link|img|iframe)[^>]*(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//)`)

// The page must work offline: nothing may be loaded from another origin.
func TestPageHasNoExternalAssets(t *testing.T) {
	for _, bad := range []string{
		`<script src="https://cdn.example/x.js">`,
		`<link rel="stylesheet" href="//fonts.example/css">`,
		`@import "x.css";`,
		`background: url(https://example.com/a.png)`,
	} {
		if !externalAsset.MatchString(bad) {
			t.Fatalf("the check misses %s", bad)
		}
	}
	if m := externalAsset.FindString(string(indexHTML)); m != "" {
		t.Fatalf("page loads an external asset: %s", m)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"dev", Options{DevToken: "tok.en.value"}, "tok.en.value"},
		{"no token", Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, tc.opts, "/demo/config.json")
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /demo/config.json = %d", rec.Code)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			tok, present := got["dev_token"]
			if tc.want == "" && present {
				t.Errorf("config carries dev_token %v without one configured", tok)
			}
			if tc.want != "" && tok != tc.want {
				t.Errorf("dev_token = %v, want %q", tok, tc.want)
			}
		})
	}
}
