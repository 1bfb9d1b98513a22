// Package auth verifies the JSON Web Tokens that callers of the broker send
// and extracts the user id they carry.
//
// The accepted signing algorithms are pinned when the Verifier is built, from
// the kind of key configured (AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY or
// AUTH_JWKS_URL) and AUTH_JWT_ALGORITHMS; the token's own "alg" header only
// ever selects among them. That closes the classic attacks where a token says
// "none", or says HS256 and is signed with the server's public key.
//
// Every failure is an *apierror.Error with code unauthorized and a message
// that tells a person what is wrong without repeating the token.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/metadata"
)

// Leeway is the clock skew tolerated on exp and nbf: the broker and the
// identity provider rarely share a clock exactly.
const Leeway = 30 * time.Second

// maxTokenBytes bounds what is parsed at all. Real tokens are a few KiB at
// most; anything far larger is garbage or an attempt to make us work.
const maxTokenBytes = 16 << 10

// DefaultUserClaim is the claim that holds the user id when AUTH_USER_CLAIM
// is not set.
const DefaultUserClaim = "sub"

// Verifier checks tokens against the configured key(s). It is safe for
// concurrent use.
type Verifier struct {
	algs      []string // accepted algorithms, pinned at construction
	static    []verificationKey
	jwks      *jwksCache
	userClaim string
	issuer    string
	audience  string
	parser    *jwt.Parser
	// verified caches successful verifications (cache.go); nil with JWKS.
	verified *verifiedCache
	// now is the clock of both claim validation and the JWKS cache; tests
	// replace it to move time without sleeping.
	now func() time.Time
}

// New builds a Verifier from the configuration. With a JWKS URL it fetches
// the key set once before returning (bounded by ctx and a timeout), so that a
// wrong URL stops the program at start rather than failing every request.
// A key that cannot be used is reported as a *config.Error naming the
// variable.
func New(ctx context.Context, cfg config.Auth) (*Verifier, error) {
	v := &Verifier{
		userClaim: strings.TrimSpace(cfg.UserClaim),
		issuer:    cfg.Issuer,
		audience:  cfg.Audience,
		now:       time.Now,
	}
	if v.userClaim == "" {
		v.userClaim = DefaultUserClaim
	}
	if reservedClaims[v.userClaim] {
		return nil, &config.Error{Var: "AUTH_USER_CLAIM", Problem: fmt.Sprintf("%q is a registered claim and cannot hold the user id", v.userClaim)}
	}

	algs := trimAll(cfg.JWTAlgorithms)
	set := 0
	for _, s := range []string{cfg.JWTSecret, cfg.JWTPublicKey, cfg.JWKSURL} {
		if s != "" {
			set++
		}
	}
	switch {
	case set == 0:
		return nil, &config.Error{Var: "AUTH_JWT_SECRET", Problem: "is required (or AUTH_JWT_PUBLIC_KEY, or AUTH_JWKS_URL)"}
	case set > 1:
		return nil, &config.Error{Var: "AUTH_JWT_SECRET", Problem: "set only one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY and AUTH_JWKS_URL"}
	case cfg.JWTSecret != "":
		key, accepted, err := secretKey(cfg.JWTSecret, algs)
		if err != nil {
			return nil, err
		}
		v.static, v.algs = []verificationKey{key}, accepted
	case cfg.JWTPublicKey != "":
		key, accepted, err := publicKeyFromConfig(cfg.JWTPublicKey, algs)
		if err != nil {
			return nil, err
		}
		v.static, v.algs = []verificationKey{key}, accepted
	default:
		accepted, err := jwksAlgorithms(algs)
		if err != nil {
			return nil, err
		}
		v.algs = accepted
		v.jwks = newJWKSCache(cfg.JWKSURL, func() time.Time { return v.now() })
		if err := v.jwks.load(ctx); err != nil {
			return nil, &config.Error{Var: "AUTH_JWKS_URL", Problem: err.Error()}
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		// Numbers stay exact, so a numeric user id is not rounded through float64.
		jwt.WithJSONNumber(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	v.parser = jwt.NewParser(opts...)
	if v.jwks == nil {
		v.verified = newVerifiedCache()
	}
	return v, nil
}

// Algorithms returns the accepted signing algorithms.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// UserClaim returns the name of the claim that holds the user id.
func (v *Verifier) UserClaim() string { return v.userClaim }

// reservedClaims cannot hold the user id: they have their own meaning and
// their own checks.
var reservedClaims = map[string]bool{"exp": true, "nbf": true, "iat": true, "iss": true, "aud": true, "jti": true}

// Sentinel causes raised inside the key lookup, so that Verify can name them.
var (
	errUnknownKey    = errors.New("no key with this kid")
	errNoKeyForAlg   = errors.New("no configured key fits the token's algorithm")
	errCriticalParam = errors.New("token header has crit parameters")
)

// Verify checks a raw token (without the "Bearer " prefix) and returns the
// user id from the configured claim. Every error is an *apierror.Error with
// code unauthorized.
func (v *Verifier) Verify(ctx context.Context, raw string) (string, error) {
	if raw == "" {
		return "", apierror.Unauthorized("token is empty")
	}
	if len(raw) > maxTokenBytes {
		return "", apierror.Unauthorized("token is malformed: longer than %d bytes", maxTokenBytes)
	}
	if v.verified != nil {
		if user, ok := v.verified.get(raw, v.now()); ok {
			return user, nil
		}
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		return "", v.explain(tok, claims, err)
	}
	user, err := v.userFrom(claims)
	if err == nil && v.verified != nil {
		v.verified.put(raw, user, claims)
	}
	return user, err
}

// keyFor returns the key(s) that may have signed t. The parser has already
// checked that t's algorithm is one of v.algs; the key must fit it too, so
// that an RSA key is never used as an HMAC secret or a P-384 key for ES256.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a recipient that does not understand a critical
	// extension must reject the token. We understand none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCriticalParam
	}
	alg := t.Method.Alg()
	var candidates []verificationKey
	if v.jwks != nil {
		kid, _ := t.Header["kid"].(string)
		keys, err := v.jwks.lookup(ctx, kid)
		if err != nil {
			return nil, err
		}
		candidates = keys
	} else {
		candidates = v.static
	}
	var fit []jwt.VerificationKey
	for _, k := range candidates {
		if k.fits(alg) {
			fit = append(fit, k.key)
		}
	}
	switch len(fit) {
	case 0:
		return nil, errNoKeyForAlg
	case 1:
		return fit[0], nil
	default:
		return jwt.VerificationKeySet{Keys: fit}, nil
	}
}

// explain turns a parse failure into the message a person sees. The jwt
// error stays attached as the cause for logs; it never contains the token.
func (v *Verifier) explain(tok *jwt.Token, claims jwt.MapClaims, err error) *apierror.Error {
	fail := func(msg string) *apierror.Error {
		return apierror.Wrap(apierror.CodeUnauthorized, err, "%s", msg)
	}
	if errors.Is(err, jwt.ErrTokenMalformed) || tok == nil {
		return fail("token is malformed")
	}
	alg, _ := tok.Header["alg"].(string)
	switch {
	case alg == "":
		return fail("token header names no algorithm")
	case !slices.Contains(v.algs, alg):
		return fail("token signed with an algorithm that is not accepted")
	case errors.Is(err, errCriticalParam):
		return fail("token header has critical extensions (crit) that are not supported")
	case errors.Is(err, errUnknownKey):
		return fail("token signed with an unknown key (kid)")
	case errors.Is(err, errNoKeyForAlg):
		return fail("token signed with an algorithm that does not fit its key")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fail("token signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fail("token cannot be verified")
	case errors.Is(err, jwt.ErrTokenExpired):
		return fail("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fail("token is not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrInvalidType):
		return fail("token has a registered claim (exp, nbf, iss or aud) of the wrong type")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// The library says only "required claim missing"; name which.
		switch {
		case !present(claims, "exp"):
			return fail("token has no expiry (exp)")
		case v.issuer != "" && !present(claims, "iss"):
			return fail("token has no issuer (iss)")
		case v.audience != "" && !present(claims, "aud"):
			return fail("token has no audience (aud)")
		}
		return fail("token lacks a required claim")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fail("token issued by an issuer that is not accepted (iss)")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fail("token is meant for another audience (aud)")
	}
	return fail("token is invalid")
}

// present reports whether claims has a non-empty value for name (exp = 0 and
// aud = "" count as absent, as the library treats them).
func present(claims jwt.MapClaims, name string) bool {
	switch c := claims[name].(type) {
	case nil:
		return false
	case string:
		return c != ""
	case []any:
		return len(c) > 0
	case json.Number:
		return c != "0"
	}
	return true
}

// integerNumber is JSON's integer syntax: what an identity provider sends for
// a numeric user id. Fractions and exponents are refused rather than guessed
// at.
var integerNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// userFrom extracts and checks the user id. The id ends up in public IDs,
// database rows and logs, hence the limits on size and characters.
func (v *Verifier) userFrom(claims jwt.MapClaims) (string, error) {
	name := v.userClaim
	var id string
	switch c := claims[name].(type) {
	case nil:
		return "", apierror.Unauthorized("token has no user claim %q", name)
	case string:
		id = c
	case json.Number:
		if !integerNumber.MatchString(string(c)) {
			return "", apierror.Unauthorized("token user claim %q must be a string or an integer", name)
		}
		id = string(c)
	default:
		return "", apierror.Unauthorized("token user claim %q must be a string or an integer", name)
	}
	if err := CheckUserID(id); err != nil {
		return "", apierror.Unauthorized("token user claim %q %s", name, err.Error())
	}
	return id, nil
}

// CheckUserID reports what makes id unusable as a user id, or nil. The
// message reads after "user id", e.g. "is empty".
func CheckUserID(id string) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > metadata.MaxUserIDBytes:
		return fmt.Errorf("is longer than %d bytes", metadata.MaxUserIDBytes)
	case !utf8.ValidString(id):
		return errors.New("is not valid UTF-8")
	case strings.ContainsFunc(id, unicode.IsControl):
		return errors.New("contains control characters")
	}
	return nil
}

func trimAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
