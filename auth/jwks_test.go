package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/brokerdev/broker/config"
)

// jwksServer serves a key set that tests can replace, and counts fetches.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.status.Store(http.StatusOK)
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, keys ...map[string]any) {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.body.Store(&b)
}

func (s *jwksServer) setRaw(body string) {
	b := []byte(body)
	s.body.Store(&b)
}

// jwksVerifier builds a Verifier on srv with a clock the test controls.
func jwksVerifier(t *testing.T, srv *jwksServer, algs ...string) (*Verifier, *fakeClock) {
	t.Helper()
	clock := &fakeClock{}
	v := newVerifier(t, config.Auth{JWKSURL: srv.URL + "/.well-known/jwks.json", JWTAlgorithms: algs})
	v.now = clock.Now
	return v, clock
}

func TestJWKSSelectsKeyByKid(t *testing.T) {
	srv := newJWKSServer(t,
		rsaJWK("rsa-1", &rsaKeyA().PublicKey),
		rsaJWK("rsa-2", &rsaKeyB().PublicKey),
		ecJWK("ec-1", &ecKeyA().PublicKey),
		edJWK("ed-1", edKeyA().Public().(ed25519.PublicKey)),
		// Not for signatures, or not a type the broker takes: skipped, not fatal.
		map[string]any{"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]any{"kty": "oct", "kid": "oct-1", "k": b64([]byte(testSecret))},
	)
	v, _ := jwksVerifier(t, srv)

	ok := []struct {
		name  string
		token string
	}{
		{"first RSA key", sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), map[string]any{"kid": "rsa-1"})},
		{"second RSA key", sign(t, jwt.SigningMethodRS256, rsaKeyB(), claims(nil), map[string]any{"kid": "rsa-2"})},
		{"EC key", sign(t, jwt.SigningMethodES256, ecKeyA(), claims(nil), map[string]any{"kid": "ec-1"})},
		{"Ed25519 key", sign(t, jwt.SigningMethodEdDSA, edKeyA(), claims(nil), map[string]any{"kid": "ed-1"})},
		{"no kid: every fitting key is tried", sign(t, jwt.SigningMethodRS256, rsaKeyB(), claims(nil), nil)},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			if user, err := v.Verify(context.Background(), tc.token); err != nil || user != "alice" {
				t.Fatalf("Verify = %q, %v", user, err)
			}
		})
	}

	bad := []struct {
		name, token, msg string
	}{
		{"kid of the other RSA key", sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), map[string]any{"kid": "rsa-2"}), "signature is invalid"},
		{"RS256 under the kid of an EC key", sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), map[string]any{"kid": "ec-1"}), "does not fit its key"},
		{"HS256 under the kid of an oct key", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), map[string]any{"kid": "oct-1"}), "algorithm that is not accepted"},
		{"HS256 with the RSA modulus as secret", sign(t, jwt.SigningMethodHS256, rsaKeyA().N.Bytes(), claims(nil), map[string]any{"kid": "rsa-1"}), "algorithm that is not accepted"},
		{"encryption key", sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), map[string]any{"kid": "enc-1"}), "unknown key"},
		{"RS384 not in the default set", sign(t, jwt.SigningMethodRS384, rsaKeyA(), claims(nil), map[string]any{"kid": "rsa-1"}), "algorithm that is not accepted"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), map[string]any{"kid": "rsa-1"}), "algorithm that is not accepted"},
		{"expired", sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), map[string]any{"kid": "rsa-1"}), "token expired"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.token)
			wantUnauthorized(t, err, tc.token, tc.msg)
		})
	}
}

// TestJWKSKeyAlgMustMatch: a JWK's own "alg" narrows the key to that
// algorithm even when the Verifier accepts others.
func TestJWKSKeyAlgMustMatch(t *testing.T) {
	k := rsaJWK("rsa-512", &rsaKeyA().PublicKey)
	k["alg"] = "RS512"
	srv := newJWKSServer(t, k)
	v, _ := jwksVerifier(t, srv, "RS256", "RS512")

	good := sign(t, jwt.SigningMethodRS512, rsaKeyA(), claims(nil), map[string]any{"kid": "rsa-512"})
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("RS512: %v", err)
	}
	bad := sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), map[string]any{"kid": "rsa-512"})
	_, err := v.Verify(context.Background(), bad)
	wantUnauthorized(t, err, bad, "does not fit its key")
}

// TestJWKSRotation: a token signed with a key published after the last fetch
// makes the cache fetch again, but not more than once per jwksMinRefreshGap.
func TestJWKSRotation(t *testing.T) {
	srv := newJWKSServer(t, rsaJWK("old", &rsaKeyA().PublicKey))
	v, clock := jwksVerifier(t, srv)
	ctx := context.Background()
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}

	newToken := sign(t, jwt.SigningMethodES256, ecKeyA(), claims(nil), map[string]any{"kid": "new"})

	// Unknown kid right after the start: within the gap, no fetch.
	_, err := v.Verify(ctx, newToken)
	wantUnauthorized(t, err, newToken, "unknown key")
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1: an unknown kid within %s must not refetch", n, jwksMinRefreshGap)
	}

	// The provider rotates; past the gap the unknown kid triggers a fetch.
	srv.set(t, rsaJWK("old", &rsaKeyA().PublicKey), ecJWK("new", &ecKeyA().PublicKey))
	clock.Advance(jwksMinRefreshGap + time.Second)
	if user, err := v.Verify(ctx, newToken); err != nil || user != "alice" {
		t.Fatalf("after rotation: Verify = %q, %v", user, err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}

	// A flood of made-up kids right after costs no more fetches.
	for i := range 20 {
		forged := sign(t, jwt.SigningMethodES256, ecKeyB(), claims(nil), map[string]any{"kid": "forged-" + string(rune('a'+i))})
		_, err := v.Verify(ctx, forged)
		wantUnauthorized(t, err, forged, "unknown key")
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after forged kids, want still 2", n)
	}

	// The old key is withdrawn; a known kid does not cause a fetch, so
	// tokens of the old key keep working until the periodic refresh.
	srv.set(t, ecJWK("new", &ecKeyA().PublicKey))
	oldToken := sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), map[string]any{"kid": "old"})
	if _, err := v.Verify(ctx, oldToken); err != nil {
		t.Fatalf("old key before periodic refresh: %v", err)
	}

	// After jwksRefreshEvery a lookup refreshes in the background.
	clock.Advance(jwksRefreshEvery + time.Second)
	_, _ = v.Verify(ctx, newToken)
	waitFor(t, func() bool { return srv.hits.Load() == 3 })
	waitFor(t, func() bool { return len(v.jwks.match("old")) == 0 })
	_, err = v.Verify(ctx, oldToken)
	wantUnauthorized(t, err, oldToken, "unknown key")
}

// TestJWKSKeepsKeysWhenRefreshFails: an outage at the identity provider
// must not reject tokens of keys already known.
func TestJWKSKeepsKeysWhenRefreshFails(t *testing.T) {
	srv := newJWKSServer(t, ecJWK("k", &ecKeyA().PublicKey))
	v, clock := jwksVerifier(t, srv)
	token := sign(t, jwt.SigningMethodES256, ecKeyA(), claims(nil), map[string]any{"kid": "k"})

	srv.status.Store(http.StatusInternalServerError)
	clock.Advance(jwksRefreshEvery + time.Second)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify during outage: %v", err)
	}
	waitFor(t, func() bool {
		v.jwks.mu.Lock()
		defer v.jwks.mu.Unlock()
		return v.jwks.inflight == nil && v.jwks.lastErr != nil
	})
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify after failed refresh: %v", err)
	}
}

func TestJWKSStartErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, s *jwksServer)
		algs    []string
		wantVar string
		wantMsg string
	}{
		{"server error", func(t *testing.T, s *jwksServer) { s.status.Store(http.StatusNotFound) }, nil, "AUTH_JWKS_URL", "HTTP status 404"},
		{"not JSON", func(t *testing.T, s *jwksServer) { s.setRaw("<html>") }, nil, "AUTH_JWKS_URL", "not valid JSON"},
		{"no keys", func(t *testing.T, s *jwksServer) { s.set(t) }, nil, "AUTH_JWKS_URL", "no keys"},
		{"only unusable keys", func(t *testing.T, s *jwksServer) {
			s.set(t, map[string]any{"kty": "oct", "k": "c2VjcmV0"}, map[string]any{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"})
		}, nil, "AUTH_JWKS_URL", "no usable signing key"},
		{"private key published", func(t *testing.T, s *jwksServer) {
			k := edJWK("k", edKeyA().Public().(ed25519.PublicKey))
			k["d"] = b64(edKeyA().Seed())
			s.set(t, k)
		}, nil, "AUTH_JWKS_URL", "private key"},
		{"point not on the curve", func(t *testing.T, s *jwksServer) {
			s.set(t, map[string]any{"kty": "EC", "crv": "P-256", "x": b64(make([]byte, 32)), "y": b64(append(make([]byte, 31), 7))})
		}, nil, "AUTH_JWKS_URL", "EC point"},
		{"HMAC algorithm", func(t *testing.T, s *jwksServer) {}, []string{"HS256"}, "AUTH_JWT_ALGORITHMS", "cannot be used with AUTH_JWKS_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, ecJWK("k", &ecKeyA().PublicKey))
			tc.setup(t, srv)
			_, err := New(context.Background(), config.Auth{JWKSURL: srv.URL, JWTAlgorithms: tc.algs, UserClaim: "sub"})
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *config.Error", err, err)
			}
			if ce.Var != tc.wantVar || !strings.Contains(ce.Problem, tc.wantMsg) {
				t.Fatalf("got %s: %s; want %s with %q", ce.Var, ce.Problem, tc.wantVar, tc.wantMsg)
			}
		})
	}
}

func TestJWKSUnreachableAtStart(t *testing.T) {
	srv := newJWKSServer(t)
	url := srv.URL
	srv.Close()
	_, err := New(context.Background(), config.Auth{JWKSURL: url, UserClaim: "sub"})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "AUTH_JWKS_URL" {
		t.Fatalf("error %v, want one naming AUTH_JWKS_URL", err)
	}
}

// waitFor polls cond: background refreshes finish on their own schedule.
// The deadline only guards against a hang; it is not a timing assertion.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
