package auth

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/brokerdev/broker/config"
)

// The cache must never change an answer: a token that verified once is
// still refused once its time is up, and a refused one is refused again.

func cachedVerifier(t *testing.T) (*Verifier, *fakeClock) {
	t.Helper()
	clock := &fakeClock{}
	v := newVerifier(t, config.Auth{JWTSecret: testSecret})
	v.now = clock.Now
	return v, clock
}

func TestVerifiedCacheServesARepeatedToken(t *testing.T) {
	v, _ := cachedVerifier(t)
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), nil)
	for range 2 {
		user, err := v.Verify(context.Background(), tok)
		if err != nil || user != "alice" {
			t.Fatalf("Verify = %q, %v; want alice", user, err)
		}
	}
	if e, ok := v.verified.entries[tok]; !ok || e.user != "alice" {
		t.Fatalf("the verified token is not cached: %+v", v.verified.entries)
	}
}

func TestVerifiedCacheRefusesATokenOnceExpired(t *testing.T) {
	v, clock := cachedVerifier(t)
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"exp": time.Now().Add(time.Minute).Unix()}), nil)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// Still inside the leeway: accepted, as without a cache.
	clock.Advance(time.Minute + Leeway - 2*time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("inside the leeway: %v", err)
	}
	clock.Advance(3 * time.Second)
	_, err := v.Verify(context.Background(), tok)
	wantUnauthorized(t, err, tok, "token expired")
}

func TestVerifiedCacheKeepsNotBefore(t *testing.T) {
	v, clock := cachedVerifier(t)
	// nbf 25 s ahead: valid now only thanks to the leeway, from 5 s ago
	// (6 s, nbf being rounded down to the second).
	nbf := time.Now().Add(Leeway - 5*time.Second)
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"nbf": nbf.Unix()}), nil)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("inside the leeway: %v", err)
	}
	clock.Advance(-10 * time.Second) // a clock stepped back: before nbf-leeway
	_, err := v.Verify(context.Background(), tok)
	wantUnauthorized(t, err, tok, "not valid yet")
}

func TestVerifiedCacheDoesNotKeepFailures(t *testing.T) {
	v, _ := cachedVerifier(t)
	bad := sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), claims(nil), nil)
	for range 2 {
		_, err := v.Verify(context.Background(), bad)
		wantUnauthorized(t, err, bad, "signature is invalid")
	}
	if len(v.verified.entries) != 0 {
		t.Fatalf("a refused token was cached")
	}
}

func TestVerifiedCacheIsBounded(t *testing.T) {
	v, _ := cachedVerifier(t)
	for i := range verifiedCacheSize + 10 {
		tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(map[string]any{"sub": "u" + strconv.Itoa(i)}), nil)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(v.verified.entries); n != verifiedCacheSize {
		t.Fatalf("%d entries, want the bound %d", n, verifiedCacheSize)
	}
}

func TestVerifiedCacheIsOffWithJWKS(t *testing.T) {
	srv := newJWKSServer(t, rsaJWK("rsa-1", &rsaKeyA().PublicKey))
	v, _ := jwksVerifier(t, srv)
	if v.verified != nil {
		t.Fatal("a JWKS verifier caches verifications, but its keys change at run time")
	}
}
