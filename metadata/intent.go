package metadata

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/brokerdev/broker/signer"
)

// An intent binds an Uploadcare upload to the user the broker signed it for.
// Uploadcare's own signature covers nothing but its expiry, so the broker
// rides a token of its own in the upload's metadata:
//
//	v1.<user segment>.<expire unix>.<nonce>.<mac>
//
// where mac = hex HMAC-SHA256(key, "v1.<segment>.<expire>.<nonce>"). It is
// checked later without a database read: the key is derived from the
// Uploadcare secret, so every replica can check every intent.
const (
	intentVersion = "v1"
	// IntentMetadataKey is the metadata key the intent travels under.
	IntentMetadataKey = "broker_intent"
)

// intentKeyLabel separates the intent key from any other use of the secret.
const intentKeyLabel = "broker upload intent v1"

// IntentSigner makes and checks intents.
type IntentSigner struct {
	key []byte
}

// NewIntentSigner derives the intent key from the provider secret.
func NewIntentSigner(secret string) *IntentSigner {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(intentKeyLabel))
	return &IntentSigner{key: mac.Sum(nil)}
}

// Issue returns an intent for the user, good until expire.
func (s *IntentSigner) Issue(userID string, expire time.Time) (string, error) {
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("intent nonce: %w", err)
	}
	body := strings.Join([]string{intentVersion, UserSegment(userID), strconv.FormatInt(expire.Unix(), 10), hex.EncodeToString(nonce)}, ".")
	return body + "." + s.mac(body), nil
}

func (s *IntentSigner) mac(body string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// Intent is a verified intent.
type Intent struct {
	UserID string
	Expire time.Time
}

// Verify checks an intent's MAC and returns whom it was issued to; ok is
// false for anything this broker did not issue.
func (s *IntentSigner) Verify(token string) (Intent, bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return Intent{}, false
	}
	body, mac := token[:i], token[i+1:]
	if !signer.Equal(mac, s.mac(body)) {
		return Intent{}, false
	}
	parts := strings.Split(body, ".")
	if len(parts) != 4 || parts[0] != intentVersion {
		return Intent{}, false
	}
	user, ok := UserFromSegment(parts[1])
	if !ok {
		return Intent{}, false
	}
	expire, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Intent{}, false
	}
	return Intent{UserID: user, Expire: time.Unix(expire, 0)}, true
}
