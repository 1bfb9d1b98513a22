package auth

import (
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verifiedCache remembers the tokens that verified, so that a client
// sending the same token with every request (the common case: a JWT lives
// for minutes or hours) pays for parsing and the signature once.
//
// It is used only with a static key (AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY).
// Then whether a given token verifies depends on nothing but the clock:
// the key cannot change while the process runs, and of the claims checked
// only exp and nbf depend on time. An entry keeps the token's validity
// window as the parser computes it, leeway included, and a hit outside it
// falls through to full verification, which refuses the token as it
// always would. The answer is therefore the same with or without the
// cache. (A JWKS key set changes at run time, so tokens verified against
// it are not cached.)
//
// The key is the whole token, so only the exact bytes that verified hit.
// Failures are never cached.
type verifiedCache struct {
	mu      sync.Mutex
	entries map[string]verifiedToken
}

type verifiedToken struct {
	user string
	// The token is good while notBefore <= now < expiresAt (leeway
	// applied); a zero notBefore means the token has no nbf.
	notBefore, expiresAt time.Time
}

const (
	// verifiedCacheSize bounds the entries; beyond it an arbitrary entry
	// makes room. It is far above the tokens in use by one replica's
	// active users at once.
	verifiedCacheSize = 4096
	// maxCachedTokenBytes keeps the memory bounded (about 8 MiB at most)
	// whatever the tokens' size; a larger token is verified every time.
	maxCachedTokenBytes = 2048
)

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{entries: make(map[string]verifiedToken)}
}

// get returns the user of raw if it verified before and is still inside
// its validity window at now.
func (c *verifiedCache) get(raw string, now time.Time) (string, bool) {
	c.mu.Lock()
	e, ok := c.entries[raw]
	c.mu.Unlock()
	if !ok || now.Before(e.notBefore) || !now.Before(e.expiresAt) {
		return "", false
	}
	return e.user, true
}

// put remembers that raw verified with these claims and names user.
func (c *verifiedCache) put(raw, user string, claims jwt.MapClaims) {
	if len(raw) > maxCachedTokenBytes {
		return
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // exp is required, so this does not happen
		return
	}
	e := verifiedToken{user: user, expiresAt: exp.Add(Leeway)}
	if nbf, err := claims.GetNotBefore(); err != nil {
		return
	} else if nbf != nil {
		e.notBefore = nbf.Add(-Leeway)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[raw]; !ok && len(c.entries) >= verifiedCacheSize {
		for k := range c.entries { // map order is random: evict one
			delete(c.entries, k)
			break
		}
	}
	c.entries[raw] = e
}
