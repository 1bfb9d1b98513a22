package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// JWKS cache timing. Identity providers publish a new key before they sign
// with it, so a periodic refresh normally picks it up; a token with an
// unknown kid triggers an early refresh, but no more often than
// jwksMinRefreshGap so that a stream of forged kids cannot turn the broker
// into a flood against the provider.
const (
	jwksRefreshEvery  = 15 * time.Minute
	jwksMinRefreshGap = 30 * time.Second
	jwksFetchTimeout  = 10 * time.Second
	jwksMaxBytes      = 1 << 20
)

// jwksCache holds the keys of one JWKS URL and refreshes them lazily: a
// lookup after jwksRefreshEvery starts a refresh in the background and keeps
// answering from the current keys; a lookup for an unknown kid waits for a
// refresh. At most one fetch runs at a time. A failed refresh keeps the old
// keys, since an outage at the provider should not log everybody out.
type jwksCache struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu          sync.Mutex
	keys        []verificationKey
	fetchedAt   time.Time     // last successful fetch
	attemptedAt time.Time     // last fetch started
	inflight    chan struct{} // closed when the running fetch ends; nil when none runs
	lastErr     error         // outcome of the last fetch
}

func newJWKSCache(url string, now func() time.Time) *jwksCache {
	return &jwksCache{
		url:    url,
		client: &http.Client{Timeout: jwksFetchTimeout},
		now:    now,
	}
}

// load does the first fetch and reports its failure.
func (c *jwksCache) load(ctx context.Context) error {
	c.refresh(ctx, true, true)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(c.keys) > 0:
		return nil
	case c.lastErr != nil:
		return c.lastErr
	case ctx.Err() != nil:
		return fmt.Errorf("fetch JWKS: %w", ctx.Err())
	}
	return errors.New("key set could not be loaded")
}

// lookup returns the keys that may have signed a token with this kid (every
// key when the token names none).
func (c *jwksCache) lookup(ctx context.Context, kid string) ([]verificationKey, error) {
	c.mu.Lock()
	stale := c.now().Sub(c.fetchedAt) >= jwksRefreshEvery
	c.mu.Unlock()
	if stale {
		c.refresh(ctx, false, false)
	}
	if keys := c.match(kid); len(keys) > 0 {
		return keys, nil
	}
	// Perhaps the provider rotated keys since the last fetch.
	c.refresh(ctx, true, false)
	if keys := c.match(kid); len(keys) > 0 {
		return keys, nil
	}
	return nil, errUnknownKey
}

func (c *jwksCache) match(kid string) []verificationKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []verificationKey
	for _, k := range c.keys {
		if kid == "" || k.kid == kid {
			out = append(out, k)
		}
	}
	return out
}

// refresh fetches the key set unless one was fetched less than
// jwksMinRefreshGap ago (force skips that check). With wait it returns when
// the fetch (its own or one already running) ends or ctx is done; without,
// it returns at once.
func (c *jwksCache) refresh(ctx context.Context, wait, force bool) {
	c.mu.Lock()
	done := c.inflight
	if done == nil {
		if !force && c.now().Sub(c.attemptedAt) < jwksMinRefreshGap {
			c.mu.Unlock()
			return
		}
		done = make(chan struct{})
		c.inflight = done
		c.attemptedAt = c.now()
		// The fetch serves every waiting request, so one caller giving up
		// must not cancel it; the timeout bounds it instead.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
		go func() {
			defer cancel()
			keys, err := c.fetch(fctx)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.lastErr = err
			if err == nil {
				c.keys = keys
				c.fetchedAt = c.now()
			}
			c.inflight = nil
			close(done)
		}()
	}
	c.mu.Unlock()
	if wait {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// fetch downloads and parses the key set.
func (c *jwksCache) fetch(ctx context.Context) ([]verificationKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("build JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS: HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, fmt.Errorf("JWKS is larger than %d bytes", jwksMaxBytes)
	}
	return parseJWKS(body)
}

// jwk is the subset of RFC 7517/7518/8037 fields the broker reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC and OKP
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// Private parts: their presence means the set was published by mistake.
	D string `json:"d"`
}

// parseJWKS reads a key set. Keys the broker cannot use (encryption keys,
// symmetric keys, unknown types or curves) are skipped, not fatal: real key
// sets mix them in. A set with no usable key at all is an error.
func parseJWKS(body []byte) ([]verificationKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	var keys []verificationKey
	var skipped []string
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		key, err := k.publicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		if len(skipped) > 0 {
			return nil, fmt.Errorf("JWKS has no usable signing key (%s)", strings.Join(skipped, "; "))
		}
		return nil, errors.New("JWKS has no keys")
	}
	return keys, nil
}

// publicKey turns one JWK into a verification key.
func (k jwk) publicKey() (verificationKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return verificationKey{}, fmt.Errorf("use %q is not sig", k.Use)
	}
	if k.D != "" {
		return verificationKey{}, errors.New("holds private key material")
	}
	var key any
	var err error
	switch k.Kty {
	case "RSA":
		key, err = k.rsaKey()
	case "EC":
		key, err = k.ecKey()
	case "OKP":
		key, err = k.okpKey()
	default:
		return verificationKey{}, fmt.Errorf("key type %q is not supported", k.Kty)
	}
	if err != nil {
		return verificationKey{}, err
	}
	if err := checkPublicKey(key); err != nil {
		return verificationKey{}, err
	}
	vk := verificationKey{kid: k.Kid, alg: k.Alg, key: key}
	// A key whose declared alg its type cannot produce is a broken entry;
	// keeping it would only make every lookup of its kid fail later.
	if k.Alg != "" && !vk.fits(k.Alg) {
		return verificationKey{}, fmt.Errorf("alg %q does not fit key type %s", k.Alg, k.Kty)
	}
	return vk, nil
}

func (k jwk) rsaKey() (*rsa.PublicKey, error) {
	n, err := b64Field("n", k.N)
	if err != nil {
		return nil, err
	}
	e, err := b64Field("e", k.E)
	if err != nil {
		return nil, err
	}
	// Exponents are small (65537 nearly always); more than four bytes is
	// garbage and would not fit rsa.PublicKey.E anyway.
	if len(e) > 4 {
		return nil, errors.New("RSA exponent is too large")
	}
	exp := int(new(big.Int).SetBytes(e).Int64())
	if exp < 3 || exp%2 == 0 {
		return nil, errors.New("RSA exponent is invalid")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func (k jwk) ecKey() (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch k.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("EC curve %q is not supported", k.Crv)
	}
	x, err := b64Field("x", k.X)
	if err != nil {
		return nil, err
	}
	y, err := b64Field("y", k.Y)
	if err != nil {
		return nil, err
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("EC coordinates must be %d bytes each for %s", size, k.Crv)
	}
	// The uncompressed SEC 1 point; the parser also checks it is on the curve.
	point := append(append([]byte{4}, x...), y...)
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, fmt.Errorf("EC point: %w", err)
	}
	return key, nil
}

func (k jwk) okpKey() (ed25519.PublicKey, error) {
	if k.Crv != "Ed25519" {
		return nil, fmt.Errorf("OKP curve %q is not supported", k.Crv)
	}
	x, err := b64Field("x", k.X)
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 key must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// b64Field decodes a base64url member (RFC 7515 §2: no padding, though some
// publishers add it anyway).
func b64Field(name, value string) ([]byte, error) {
	if value == "" {
		return nil, fmt.Errorf("member %q is missing", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return nil, fmt.Errorf("member %q is not base64url: %w", name, err)
	}
	return b, nil
}
