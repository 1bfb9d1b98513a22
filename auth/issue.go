package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IssueHS256 makes an HS256 token for scripts, tests and `broker token`: the
// user id under claim (DefaultUserClaim when empty), iat, exp = now + ttl,
// and iss/aud when non-empty. It refuses what a Verifier with the same
// settings would refuse, so a token it prints is one the broker accepts.
func IssueHS256(secret []byte, claim, user string, ttl time.Duration, issuer, audience string) (string, error) {
	claim = strings.TrimSpace(claim)
	if claim == "" {
		claim = DefaultUserClaim
	}
	switch {
	case len(secret) < 32:
		return "", errors.New("issue token: the secret must be at least 32 bytes for HS256")
	case reservedClaims[claim]:
		return "", fmt.Errorf("issue token: %q is a registered claim and cannot hold the user id", claim)
	case ttl <= 0:
		return "", fmt.Errorf("issue token: ttl must be positive, got %s", ttl)
	}
	if err := CheckUserID(user); err != nil {
		return "", fmt.Errorf("issue token: user id %w", err)
	}
	now := time.Now()
	claims := jwt.MapClaims{
		claim: user,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if issuer != "" {
		claims["iss"] = issuer
	}
	if audience != "" {
		claims["aud"] = audience
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return signed, nil
}
