package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/config"
)

// FuzzVerify: whatever arrives in the Authorization header, Verify must not
// panic, must refuse it with the unauthorized code, and must not repeat it.
// Seeds beyond these live in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	v, err := New(context.Background(), config.Auth{JWTSecret: testSecret, UserClaim: "sub", Issuer: "iss", Audience: "aud"})
	if err != nil {
		f.Fatal(err)
	}
	// Real shapes: signed with another secret, unsigned, with odd claims.
	other := []byte("another-secret-another-secret-another-secret")
	for _, c := range []jwt.MapClaims{claims(nil), claims(map[string]any{"sub": 12}), claims(map[string]any{"exp": "x"})} {
		f.Add(sign(f, jwt.SigningMethodHS256, other, c, nil))
		f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, c, nil))
	}
	f.Add(unsigned(`{"alg":"HS256","crit":["x"]}`, `{"sub":"a"}`, []byte{1, 2, 3}))
	f.Add(unsigned(`{"alg":"RS256","kid":"../../etc/passwd"}`, `{"sub":"a","exp":1e400}`, nil))
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")

	f.Fuzz(func(t *testing.T, raw string) {
		user, err := v.Verify(context.Background(), raw)
		if err == nil {
			t.Fatalf("accepted %q as user %q", raw, user)
		}
		e, ok := apierror.As(err)
		if !ok || e.Code != apierror.CodeUnauthorized {
			t.Fatalf("error %v (%T), want unauthorized *apierror.Error", err, err)
		}
		if len(raw) >= 24 && strings.Contains(e.Message, raw) {
			t.Fatalf("message repeats the token: %q", e.Message)
		}
	})
}

// FuzzVerifyMutated splices the fuzzer's bytes into a valid token: at pos,
// drop cut bytes and insert ins. A changed token may only be accepted when
// it still says exactly the same thing: the same header and claims
// segments and a signature segment that decodes to the same bytes (base64
// leaves the unused low bits of its last character free). Anything else
// accepted is a forgery. Seeds live in testdata/fuzz/FuzzVerifyMutated.
func FuzzVerifyMutated(f *testing.F) {
	v, err := New(context.Background(), config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		f.Fatal(err)
	}
	valid := sign(f, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"exp": 4102444800}), nil)
	segs := strings.Split(valid, ".")
	f.Add(uint16(0), uint8(0), "")
	f.Add(uint16(len(valid)-1), uint8(1), "A")
	f.Add(uint16(len(valid)-1), uint8(1), "B")
	f.Add(uint16(len(segs[0])), uint8(1), "")
	f.Add(uint16(len(segs[0])+1), uint8(0), "eyJzdWIiOiJib2IifQ.")
	f.Add(uint16(len(valid)), uint8(0), "=")
	f.Add(uint16(len(valid)), uint8(0), ".x")
	f.Add(uint16(5), uint8(3), "+/")

	f.Fuzz(func(t *testing.T, pos uint16, cut uint8, ins string) {
		p := int(pos) % (len(valid) + 1)
		end := min(p+int(cut%8), len(valid))
		mutated := valid[:p] + ins + valid[end:]
		user, err := v.Verify(context.Background(), mutated)
		if err != nil {
			if e, ok := apierror.As(err); !ok || e.Code != apierror.CodeUnauthorized {
				t.Fatalf("error %v (%T), want unauthorized *apierror.Error", err, err)
			}
			return
		}
		if mutated == valid {
			if user != "alice" {
				t.Fatalf("the valid token gave user %q", user)
			}
			return
		}
		got := strings.Split(mutated, ".")
		if len(got) != 3 || got[0] != segs[0] || got[1] != segs[1] {
			t.Fatalf("accepted a token with other header or claims: %q as user %q", mutated, user)
		}
		want, _ := base64.RawURLEncoding.DecodeString(segs[2])
		have, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(got[2], "="))
		if err != nil || !bytes.Equal(have, want) {
			t.Fatalf("accepted a token with another signature: %q as user %q", mutated, user)
		}
	})
}

// FuzzBearerHeader sends any Authorization header through the middleware
// in front of a handler: no panic, and the handler runs only when the
// header is the Bearer scheme (any case) with the valid token, spaces
// aside. Otherwise the answer is 401 with WWW-Authenticate: Bearer.
func FuzzBearerHeader(f *testing.F) {
	v, err := New(context.Background(), config.Auth{JWTSecret: testSecret, UserClaim: "sub"})
	if err != nil {
		f.Fatal(err)
	}
	valid := sign(f, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"exp": 4102444800}), nil)
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if ae, ok := apierror.As(err); ok {
			_ = c.JSON(ae.Status(), map[string]any{"code": ae.Code})
			return
		}
		_ = c.JSON(http.StatusInternalServerError, map[string]any{"code": "internal"})
	}
	e.GET("/me", func(c echo.Context) error { return c.String(http.StatusOK, UserID(c)) }, v.Middleware())
	for _, s := range []string{"Bearer ", "bearer ", "BEARER\t", "Basic ", "Bearer  ", " Bearer ", "Bearer" + valid, "Token "} {
		f.Add(s, "")
		f.Add(s, " ")
	}
	f.Add("Bearer ", "x")
	f.Add("Bearer ", ","+valid)

	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		header := prefix + valid + suffix
		req := httptest.NewRequest(http.MethodGet, "/me", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		scheme, tok, _ := strings.Cut(strings.TrimSpace(header), " ")
		shouldPass := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) == valid
		switch {
		case rec.Code == http.StatusOK && !shouldPass:
			t.Fatalf("header %q was accepted as user %q", header, rec.Body.String())
		case rec.Code == http.StatusOK && rec.Body.String() != "alice":
			t.Fatalf("header %q gave user %q", header, rec.Body.String())
		case rec.Code != http.StatusOK && shouldPass:
			t.Fatalf("header %q was refused: %d %s", header, rec.Code, rec.Body.String())
		case rec.Code != http.StatusOK && (rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer")):
			t.Fatalf("header %q: %d %q, want 401 with WWW-Authenticate: Bearer", header, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	})
}
