package auth

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/config"
)

// benchAlgorithms are the algorithms identity providers sign with in
// practice: the broker's own HS256 tokens, and the asymmetric defaults of a
// JWKS. Each verification includes parsing, the key lookup, the signature
// and the claim checks, i.e. everything Verify does per request.
func benchAlgorithms(b *testing.B) []struct {
	name   string
	cfg    config.Auth
	method jwt.SigningMethod
	key    any
} {
	return []struct {
		name   string
		cfg    config.Auth
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", config.Auth{JWTSecret: testSecret}, jwt.SigningMethodHS256, []byte(testSecret)},
		{"RS256", config.Auth{JWTPublicKey: publicPEM(b, &rsaKeyA().PublicKey)}, jwt.SigningMethodRS256, rsaKeyA()},
		{"ES256", config.Auth{JWTPublicKey: publicPEM(b, &ecKeyA().PublicKey)}, jwt.SigningMethodES256, ecKeyA()},
		{"EdDSA", config.Auth{JWTPublicKey: publicPEM(b, edKeyA().Public())}, jwt.SigningMethodEdDSA, edKeyA()},
	}
}

// BenchmarkVerify is a full verification, as for a token seen for the
// first time (or a JWKS-signed one, which is never cached).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	for _, tc := range benchAlgorithms(b) {
		b.Run(tc.name, func(b *testing.B) {
			v := newVerifier(b, tc.cfg)
			v.verified = nil
			tok := sign(b, tc.method, tc.key, claims(nil), nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCached is a token the Verifier has verified before with
// a static key: what a client sending its token with every request costs
// from the second request on (cache.go).
func BenchmarkVerifyCached(b *testing.B) {
	ctx := context.Background()
	for _, tc := range benchAlgorithms(b) {
		b.Run(tc.name, func(b *testing.B) {
			v := newVerifier(b, tc.cfg)
			tok := sign(b, tc.method, tc.key, claims(nil), nil)
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyParallel shows how full verification scales over the
// machine's cores (-cpu 1,2,…): the Verifier is shared by every request.
func BenchmarkVerifyParallel(b *testing.B) {
	ctx := context.Background()
	for _, tc := range benchAlgorithms(b) {
		b.Run(tc.name, func(b *testing.B) {
			v := newVerifier(b, tc.cfg)
			v.verified = nil
			tok := sign(b, tc.method, tc.key, claims(nil), nil)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMiddlewareHS256 adds what the Echo middleware does around Verify:
// reading the header and carrying the user on the context.
func BenchmarkMiddlewareHS256(b *testing.B) {
	v := newVerifier(b, config.Auth{JWTSecret: testSecret})
	tok := sign(b, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), nil)
	h := v.Middleware()(func(c echo.Context) error { return nil })
	e := echo.New()
	req := httptest.NewRequest("GET", "/generate-signature", nil)
	req.Header.Set(echo.HeaderAuthorization, "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		c := e.NewContext(req, httptest.NewRecorder())
		if err := h(c); err != nil {
			b.Fatal(err)
		}
	}
}
