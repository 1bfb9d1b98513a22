package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/config"
)

// newServer runs the middleware in a real Echo instance behind a real HTTP
// listener. The error handler is a stand-in for the HTTP layer's: it writes
// the contract's error body for an *apierror.Error.
func newServer(t *testing.T, v *Verifier) *httptest.Server {
	t.Helper()
	e := echo.New()
	e.HideBanner = true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if ae, ok := apierror.As(err); ok {
			_ = c.JSON(ae.Status(), map[string]any{"success": false, "error": ae.Message, "code": ae.Code})
			return
		}
		_ = c.JSON(http.StatusInternalServerError, map[string]any{"success": false, "error": "not an apierror", "code": "internal"})
	}
	e.GET("/me", func(c echo.Context) error {
		fromCtx, _ := UserFromContext(c.Request().Context())
		return c.JSON(http.StatusOK, map[string]any{"success": true, "user": UserID(c), "ctx_user": fromCtx})
	}, v.Middleware())
	e.GET("/open", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"user": UserID(c)})
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func TestMiddleware(t *testing.T) {
	v := newVerifier(t, config.Auth{JWTSecret: testSecret})
	srv := newServer(t, v)
	valid := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), nil)
	expired := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), nil)
	noUser := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"sub": nil}), nil)

	tests := []struct {
		name       string
		header     string // Authorization; "" sends none
		wantStatus int
		wantAuth   string // WWW-Authenticate, prefix
		wantMsg    string
	}{
		{"valid", "Bearer " + valid, 200, "", ""},
		{"scheme is case-insensitive", "bearer " + valid, 200, "", ""},
		{"scheme in capitals, extra spaces", "BEARER   " + valid + " ", 200, "", ""},
		{"no Authorization header", "", 401, "Bearer", "authentication required"},
		{"Basic scheme", "Basic YWxpY2U6c2VjcmV0", 401, "Bearer", "authentication required"},
		{"token without scheme", valid, 401, "Bearer", "authentication required"},
		{"Bearer with nothing after it", "Bearer ", 401, "Bearer", "authentication required"},
		{"expired token", "Bearer " + expired, 401, `Bearer error="invalid_token", error_description="token expired"`, "token expired"},
		{"malformed token", "Bearer not.a.token", 401, `Bearer error="invalid_token"`, "malformed"},
		{"wrong signature", "Bearer " + valid[:len(valid)-4] + "AAAA", 401, `Bearer error="invalid_token"`, "signature"},
		{"no user claim", "Bearer " + noUser, 401, `Bearer error="invalid_token", error_description="token has no user claim 'sub'"`, `no user claim "sub"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/me", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %v)", resp.StatusCode, tc.wantStatus, body)
			}
			got := resp.Header.Get("WWW-Authenticate")
			if tc.wantStatus == 200 {
				if body["user"] != "alice" || body["ctx_user"] != "alice" {
					t.Fatalf("handler saw user %v / context user %v, want alice", body["user"], body["ctx_user"])
				}
				if got != "" {
					t.Fatalf("WWW-Authenticate %q on success", got)
				}
				return
			}
			if tc.wantAuth == "Bearer" && got != "Bearer" || !strings.HasPrefix(got, tc.wantAuth) {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.wantAuth)
			}
			if body["code"] != apierror.CodeUnauthorized || body["success"] != false {
				t.Fatalf("body %v, want code unauthorized", body)
			}
			msg, _ := body["error"].(string)
			if !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("error %q, want it to contain %q", msg, tc.wantMsg)
			}
			if strings.Contains(msg, valid) || strings.Contains(got, valid) {
				t.Fatal("response repeats the token")
			}
		})
	}
}

func TestMiddlewareReturnsAPIError(t *testing.T) {
	v := newVerifier(t, config.Auth{JWTSecret: testSecret})
	e := echo.New()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer garbage")
	rec := httptest.NewRecorder()
	c := e.NewContext(req, rec)
	called := false
	err := v.Middleware()(func(echo.Context) error { called = true; return nil })(c)
	if called {
		t.Fatal("handler ran with a bad token")
	}
	wantUnauthorized(t, err, "", "malformed")
	if rec.Body.Len() != 0 {
		t.Fatalf("middleware wrote a body: %q", rec.Body.String())
	}
}

func TestUserIDWithoutMiddleware(t *testing.T) {
	srv := newServer(t, newVerifier(t, config.Auth{JWTSecret: testSecret}))
	resp, err := srv.Client().Get(srv.URL + "/open")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body["user"] != "" {
		t.Fatalf("user %v on an open route, want empty", body["user"])
	}
}

func TestUserContext(t *testing.T) {
	if _, ok := UserFromContext(context.Background()); ok {
		t.Fatal("user in an empty context")
	}
	if id, ok := UserFromContext(WithUser(context.Background(), "bob")); !ok || id != "bob" {
		t.Fatalf("UserFromContext = %q, %v", id, ok)
	}
}

func TestHeaderSafe(t *testing.T) {
	if got := headerSafe("a \"q\" \\ é\n"); got != "a 'q' ? ??" {
		t.Fatalf("headerSafe = %q", got)
	}
}
