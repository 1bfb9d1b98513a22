package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/brokerdev/broker/config"
)

func TestVerify(t *testing.T) {
	hsCfg := config.Auth{JWTSecret: testSecret}
	rsaCfg := config.Auth{JWTPublicKey: publicPEM(t, &rsaKeyA().PublicKey)}
	ecCfg := config.Auth{JWTPublicKey: publicPEM(t, &ecKeyA().PublicKey)}
	edCfg := config.Auth{JWTPublicKey: publicPEM(t, edKeyA().Public())}
	hs := func(c jwt.MapClaims) func(t testing.TB) string {
		return func(t testing.TB) string { return sign(t, jwt.SigningMethodHS256, []byte(testSecret), c, nil) }
	}
	now := time.Now()
	long := strings.Repeat("x", 129)

	tests := []struct {
		name     string
		cfg      config.Auth
		token    func(t testing.TB) string
		wantUser string // set for cases that must pass
		wantMsg  string // set for cases that must fail
	}{
		// Accepted.
		{name: "HS256", cfg: hsCfg, token: hs(claims(nil)), wantUser: "alice"},
		{name: "RS256", cfg: rsaCfg, wantUser: "alice", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), nil)
		}},
		{name: "ES256", cfg: ecCfg, wantUser: "alice", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKeyA(), claims(nil), nil)
		}},
		{name: "EdDSA", cfg: edCfg, wantUser: "alice", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodEdDSA, edKeyA(), claims(nil), nil)
		}},
		{name: "ES384 implied by a P-384 key", cfg: config.Auth{JWTPublicKey: publicPEM(t, &ec384().PublicKey)}, wantUser: "alice",
			token: func(t testing.TB) string { return sign(t, jwt.SigningMethodES384, ec384(), claims(nil), nil) }},
		{name: "PS256 when configured for an RSA key",
			cfg:      config.Auth{JWTPublicKey: rsaCfg.JWTPublicKey, JWTAlgorithms: []string{"PS256"}},
			wantUser: "alice",
			token:    func(t testing.TB) string { return sign(t, jwt.SigningMethodPS256, rsaKeyA(), claims(nil), nil) }},
		{name: "HS512 when configured", cfg: config.Auth{JWTSecret: testSecret, JWTAlgorithms: []string{"HS512"}}, wantUser: "alice",
			token: func(t testing.TB) string {
				return sign(t, jwt.SigningMethodHS512, []byte(testSecret), claims(nil), nil)
			}},
		{name: "custom user claim", cfg: config.Auth{JWTSecret: testSecret, UserClaim: "uid"}, wantUser: "u-42",
			token: hs(claims(map[string]any{"uid": "u-42", "sub": "someone-else"}))},
		{name: "numeric user id is rendered in decimal", cfg: config.Auth{JWTSecret: testSecret, UserClaim: "uid"},
			wantUser: "12345678901234567890",
			token: func(t testing.TB) string {
				return hsRaw(t, `{"uid":12345678901234567890,"exp":`+unix(now.Add(time.Hour))+`}`)
			}},
		{name: "leeway: expired 10s ago", cfg: hsCfg, wantUser: "alice",
			token: hs(claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}))},
		{name: "leeway: nbf 10s ahead", cfg: hsCfg, wantUser: "alice",
			token: hs(claims(map[string]any{"nbf": now.Add(10 * time.Second).Unix()}))},
		{name: "issuer and audience match", cfg: config.Auth{JWTSecret: testSecret, Issuer: "https://idp.example", Audience: "broker"},
			wantUser: "alice",
			token:    hs(claims(map[string]any{"iss": "https://idp.example", "aud": []string{"other", "broker"}}))},
		{name: "user id of exactly 128 bytes", cfg: hsCfg, wantUser: long[:128],
			token: hs(claims(map[string]any{"sub": long[:128]}))},
		{name: "non-ASCII user id", cfg: hsCfg, wantUser: "jürgen@例え.jp",
			token: hs(claims(map[string]any{"sub": "jürgen@例え.jp"}))},

		// Refused: algorithms.
		{name: "alg none", cfg: hsCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), nil)
		}},
		{name: "alg none against a public key", cfg: rsaCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), nil)
		}},
		{name: "alg None spelled otherwise", cfg: hsCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return unsigned(`{"alg":"None","typ":"JWT"}`, `{"sub":"alice","exp":`+unix(now.Add(time.Hour))+`}`, nil)
		}},
		{name: "HS384 when HS256 is pinned", cfg: hsCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS384, []byte(testSecret), claims(nil), nil)
		}},
		{name: "RS256 when a secret is configured", cfg: hsCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), nil)
		}},
		{name: "key confusion: HS256 with the RSA public key PEM as secret", cfg: rsaCfg, wantMsg: "algorithm that is not accepted",
			token: func(t testing.TB) string {
				return sign(t, jwt.SigningMethodHS256, []byte(rsaCfg.JWTPublicKey), claims(nil), nil)
			}},
		{name: "key confusion: HS256 with the EC public key PEM as secret", cfg: ecCfg, wantMsg: "algorithm that is not accepted",
			token: func(t testing.TB) string {
				return sign(t, jwt.SigningMethodHS256, []byte(ecCfg.JWTPublicKey), claims(nil), nil)
			}},
		{name: "PS256 when only RS256 is pinned", cfg: rsaCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodPS256, rsaKeyA(), claims(nil), nil)
		}},
		{name: "ES384 against a P-256 key", cfg: ecCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES384, ec384(), claims(nil), nil)
		}},
		{name: "unknown alg", cfg: hsCfg, wantMsg: "algorithm that is not accepted", token: func(t testing.TB) string {
			return unsigned(`{"alg":"XS999"}`, `{"sub":"alice"}`, []byte("sig"))
		}},
		{name: "no alg", cfg: hsCfg, wantMsg: "names no algorithm", token: func(t testing.TB) string {
			return unsigned(`{"typ":"JWT"}`, `{"sub":"alice"}`, []byte("sig"))
		}},
		{name: "crit header", cfg: hsCfg, wantMsg: "critical extensions", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), map[string]any{"crit": []string{"b64"}, "b64": false})
		}},

		// Refused: signature.
		{name: "wrong HMAC secret", cfg: hsCfg, wantMsg: "signature is invalid", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret+"-other"), claims(nil), nil)
		}},
		{name: "wrong RSA key", cfg: rsaCfg, wantMsg: "signature is invalid", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodRS256, rsaKeyB(), claims(nil), nil)
		}},
		{name: "wrong EC key", cfg: ecCfg, wantMsg: "signature is invalid", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodES256, ecKeyB(), claims(nil), nil)
		}},
		{name: "tampered payload", cfg: hsCfg, wantMsg: "signature is invalid", token: func(t testing.TB) string {
			good := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), nil)
			parts := strings.Split(good, ".")
			evil := strings.Split(unsigned(`{}`, `{"sub":"mallory","exp":`+unix(now.Add(time.Hour))+`}`, nil), ".")
			return parts[0] + "." + evil[1] + "." + parts[2]
		}},

		// Refused: time.
		{name: "expired", cfg: hsCfg, wantMsg: "token expired",
			token: hs(claims(map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}))},
		{name: "nbf in the future", cfg: hsCfg, wantMsg: "not valid yet",
			token: hs(claims(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()}))},
		{name: "no exp", cfg: hsCfg, wantMsg: "no expiry", token: hs(claims(map[string]any{"exp": nil}))},
		{name: "exp of the wrong type", cfg: hsCfg, wantMsg: "wrong type", token: hs(claims(map[string]any{"exp": "tomorrow"}))},

		// Refused: issuer and audience.
		{name: "wrong audience", cfg: config.Auth{JWTSecret: testSecret, Audience: "broker"}, wantMsg: "another audience",
			token: hs(claims(map[string]any{"aud": "someone-else"}))},
		{name: "no audience", cfg: config.Auth{JWTSecret: testSecret, Audience: "broker"}, wantMsg: "no audience",
			token: hs(claims(nil))},
		{name: "wrong issuer", cfg: config.Auth{JWTSecret: testSecret, Issuer: "https://idp.example"}, wantMsg: "issuer that is not accepted",
			token: hs(claims(map[string]any{"iss": "https://evil.example"}))},
		{name: "no issuer", cfg: config.Auth{JWTSecret: testSecret, Issuer: "https://idp.example"}, wantMsg: "no issuer",
			token: hs(claims(nil))},

		// Refused: the user claim.
		{name: "missing user claim", cfg: hsCfg, wantMsg: `token has no user claim "sub"`, token: hs(claims(map[string]any{"sub": nil}))},
		{name: "missing custom user claim", cfg: config.Auth{JWTSecret: testSecret, UserClaim: "uid"}, wantMsg: `token has no user claim "uid"`,
			token: hs(claims(nil))},
		{name: "empty user claim", cfg: hsCfg, wantMsg: "is empty", token: hs(claims(map[string]any{"sub": ""}))},
		{name: "null user claim", cfg: hsCfg, wantMsg: "no user claim", token: func(t testing.TB) string {
			return hsRaw(t, `{"sub":null,"exp":`+unix(now.Add(time.Hour))+`}`)
		}},
		{name: "over-long user claim", cfg: hsCfg, wantMsg: "longer than 128 bytes", token: hs(claims(map[string]any{"sub": long}))},
		{name: "control character in user claim", cfg: hsCfg, wantMsg: "control characters",
			token: hs(claims(map[string]any{"sub": "alice\nadmin"}))},
		{name: "user claim is an object", cfg: hsCfg, wantMsg: "must be a string or an integer",
			token: hs(claims(map[string]any{"sub": map[string]any{"id": "alice"}}))},
		{name: "user claim is a fraction", cfg: hsCfg, wantMsg: "must be a string or an integer", token: func(t testing.TB) string {
			return hsRaw(t, `{"sub":1.5,"exp":`+unix(now.Add(time.Hour))+`}`)
		}},
		{name: "user claim is an exponent", cfg: hsCfg, wantMsg: "must be a string or an integer", token: func(t testing.TB) string {
			return hsRaw(t, `{"sub":1e999999,"exp":`+unix(now.Add(time.Hour))+`}`)
		}},

		// Refused: shape.
		{name: "malformed: not a JWT", cfg: hsCfg, wantMsg: "malformed", token: func(testing.TB) string { return "not-a-token" }},
		{name: "malformed: bad base64", cfg: hsCfg, wantMsg: "malformed", token: func(testing.TB) string { return "a!.b!.c!" }},
		{name: "malformed: header not JSON", cfg: hsCfg, wantMsg: "malformed", token: func(testing.TB) string {
			return unsigned(`{alg`, `{}`, nil)
		}},
		{name: "malformed: four segments", cfg: hsCfg, wantMsg: "malformed", token: func(t testing.TB) string {
			return sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims(nil), nil) + ".x"
		}},
		{name: "empty", cfg: hsCfg, wantMsg: "empty", token: func(testing.TB) string { return "" }},
		{name: "too long", cfg: hsCfg, wantMsg: "malformed", token: func(testing.TB) string { return strings.Repeat("a", 20000) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.cfg)
			token := tc.token(t)
			user, err := v.Verify(context.Background(), token)
			if tc.wantMsg != "" {
				wantUnauthorized(t, err, token, tc.wantMsg)
				if user != "" {
					t.Fatalf("user %q returned with an error", user)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if user != tc.wantUser {
				t.Fatalf("user %q, want %q", user, tc.wantUser)
			}
		})
	}
}

// hsRaw signs a literal JSON payload with testSecret, for claim values the
// Go encoder would not produce (big integers, null, exponents).
func hsRaw(t testing.TB, payload string) string {
	t.Helper()
	signing := strings.Join(strings.Split(unsigned(`{"alg":"HS256","typ":"JWT"}`, payload, nil), ".")[:2], ".")
	sig, err := jwt.SigningMethodHS256.Sign(signing, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func TestAlgorithmsArePinned(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Auth
		want string
	}{
		{"secret", config.Auth{JWTSecret: testSecret}, "HS256"},
		{"secret with algorithms", config.Auth{JWTSecret: testSecret, JWTAlgorithms: []string{"HS384", " HS512"}}, "HS384,HS512"},
		{"RSA", config.Auth{JWTPublicKey: publicPEM(t, &rsaKeyA().PublicKey)}, "RS256"},
		{"P-256", config.Auth{JWTPublicKey: publicPEM(t, &ecKeyA().PublicKey)}, "ES256"},
		{"P-384", config.Auth{JWTPublicKey: publicPEM(t, &ec384().PublicKey)}, "ES384"},
		{"P-521", config.Auth{JWTPublicKey: publicPEM(t, &mustEC(elliptic.P521()).PublicKey)}, "ES512"},
		{"Ed25519", config.Auth{JWTPublicKey: publicPEM(t, edKeyA().Public())}, "EdDSA"},
		{"RSA with algorithms", config.Auth{JWTPublicKey: publicPEM(t, &rsaKeyA().PublicKey), JWTAlgorithms: []string{"RS512", "PS256"}}, "RS512,PS256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(newVerifier(t, tc.cfg).Algorithms(), ",")
			if got != tc.want {
				t.Fatalf("algorithms %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	dir := t.TempDir()
	rsaPEM := publicPEM(t, &rsaKeyA().PublicKey)
	tests := []struct {
		name    string
		cfg     config.Auth
		wantVar string
		wantMsg string
	}{
		{"nothing configured", config.Auth{}, "AUTH_JWT_SECRET", "required"},
		{"two keys", config.Auth{JWTSecret: testSecret, JWTPublicKey: rsaPEM}, "AUTH_JWT_SECRET", "only one"},
		{"short secret", config.Auth{JWTSecret: "short"}, "AUTH_JWT_SECRET", "32 bytes"},
		{"RS256 with a secret", config.Auth{JWTSecret: testSecret, JWTAlgorithms: []string{"RS256"}}, "AUTH_JWT_ALGORITHMS", "does not fit"},
		{"HS256 with a public key", config.Auth{JWTPublicKey: rsaPEM, JWTAlgorithms: []string{"HS256"}}, "AUTH_JWT_ALGORITHMS", "does not fit"},
		{"ES384 with a P-256 key", config.Auth{JWTPublicKey: publicPEM(t, &ecKeyA().PublicKey), JWTAlgorithms: []string{"ES384"}}, "AUTH_JWT_ALGORITHMS", "does not fit"},
		{"garbage PEM", config.Auth{JWTPublicKey: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"}, "AUTH_JWT_PUBLIC_KEY", ""},
		{"corrupt key bytes", config.Auth{JWTPublicKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "AUTH_JWT_PUBLIC_KEY", "cannot parse"},
		{"missing file", config.Auth{JWTPublicKey: filepath.Join(dir, "absent.pem")}, "AUTH_JWT_PUBLIC_KEY", "readable file"},
		{"private key", config.Auth{JWTPublicKey: privatePEM(t)}, "AUTH_JWT_PUBLIC_KEY", "private key"},
		{"short RSA key", config.Auth{JWTPublicKey: publicPEM(t, &mustRSA(1024).PublicKey)}, "AUTH_JWT_PUBLIC_KEY", "at least 2048"},
		{"reserved user claim", config.Auth{JWTSecret: testSecret, UserClaim: "exp"}, "AUTH_USER_CLAIM", "registered claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.UserClaim == "" {
				tc.cfg.UserClaim = "sub"
			}
			_, err := New(context.Background(), tc.cfg)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *config.Error", err, err)
			}
			if ce.Var != tc.wantVar || !strings.Contains(ce.Problem, tc.wantMsg) {
				t.Fatalf("got %s: %s; want %s with %q", ce.Var, ce.Problem, tc.wantVar, tc.wantMsg)
			}
			if tc.cfg.JWTSecret != "" && strings.Contains(err.Error(), tc.cfg.JWTSecret) {
				t.Fatalf("error repeats the secret")
			}
		})
	}
}

// TestPublicKeyForms: the PEM may be given inline, as a file path, with
// literal \n (one-line environment variables), as PKCS#1 or as a certificate.
func TestPublicKeyForms(t *testing.T) {
	rsaPEM := publicPEM(t, &rsaKeyA().PublicKey)
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, []byte(rsaPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{
		"inline":          rsaPEM,
		"file":            file,
		"escaped newline": strings.ReplaceAll(strings.TrimSpace(rsaPEM), "\n", `\n`),
		"PKCS#1":          pkcs1PEM(&rsaKeyA().PublicKey),
		"certificate":     certPEM(t),
	}
	token := sign(t, jwt.SigningMethodRS256, rsaKeyA(), claims(nil), nil)
	for name, value := range forms {
		t.Run(name, func(t *testing.T) {
			v := newVerifier(t, config.Auth{JWTPublicKey: value})
			if user, err := v.Verify(context.Background(), token); err != nil || user != "alice" {
				t.Fatalf("Verify = %q, %v", user, err)
			}
		})
	}
}

func TestIssueHS256(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		v := newVerifier(t, config.Auth{JWTSecret: testSecret, UserClaim: "uid", Issuer: "broker-dev", Audience: "broker"})
		tok, err := IssueHS256([]byte(testSecret), "uid", "dev-user", time.Hour, "broker-dev", "broker")
		if err != nil {
			t.Fatal(err)
		}
		if user, err := v.Verify(context.Background(), tok); err != nil || user != "dev-user" {
			t.Fatalf("Verify = %q, %v", user, err)
		}
	})
	t.Run("default claim and exp", func(t *testing.T) {
		tok, err := IssueHS256([]byte(testSecret), "", "dev-user", 90*time.Second, "", "")
		if err != nil {
			t.Fatal(err)
		}
		c := jwt.MapClaims{}
		if _, err := jwt.NewParser().ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return []byte(testSecret), nil }); err != nil {
			t.Fatal(err)
		}
		if c["sub"] != "dev-user" || c["iss"] != nil || c["aud"] != nil {
			t.Fatalf("claims %v", c)
		}
		exp, _ := c.GetExpirationTime()
		iat, _ := c.GetIssuedAt()
		if exp == nil || iat == nil || exp.Sub(iat.Time) != 90*time.Second {
			t.Fatalf("iat %v exp %v, want 90s apart", iat, exp)
		}
	})
	for name, call := range map[string]func() (string, error){
		"short secret":   func() (string, error) { return IssueHS256([]byte("short"), "sub", "u", time.Hour, "", "") },
		"no user":        func() (string, error) { return IssueHS256([]byte(testSecret), "sub", "", time.Hour, "", "") },
		"zero ttl":       func() (string, error) { return IssueHS256([]byte(testSecret), "sub", "u", 0, "", "") },
		"reserved claim": func() (string, error) { return IssueHS256([]byte(testSecret), "exp", "u", time.Hour, "", "") },
		"long user": func() (string, error) {
			return IssueHS256([]byte(testSecret), "sub", strings.Repeat("u", 129), time.Hour, "", "")
		},
	} {
		t.Run(name, func(t *testing.T) {
			if tok, err := call(); err == nil {
				t.Fatalf("issued %q, want an error", tok)
			}
		})
	}
}

func TestEd25519KeyTypeIsChecked(t *testing.T) {
	// A raw 32-byte slice must never be taken for an HMAC secret or vice versa.
	k := verificationKey{key: ed25519.PublicKey(make([]byte, 32))}
	if k.fits("HS256") || !k.fits("EdDSA") {
		t.Fatal("Ed25519 key fits the wrong algorithms")
	}
	h := verificationKey{key: []byte(testSecret)}
	if h.fits("EdDSA") || h.fits("RS256") || !h.fits("HS256") {
		t.Fatal("HMAC key fits the wrong algorithms")
	}
}
