package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

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
