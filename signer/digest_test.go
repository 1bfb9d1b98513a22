package signer

import (
	"crypto/sha1" //nolint:gosec // Cloudinary's protocol
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// digest takes a short road (one stack buffer) and a long one (a streaming
// hash); both must be the plain digest of the concatenation.
func TestDigestShortAndLong(t *testing.T) {
	for _, n := range []int{0, 1, 100, 511, 512, 513, 4096} {
		body := strings.Repeat("x", n)
		parts := []string{body, "1713997800", "secret"}
		joined := []byte(strings.Join(parts, ""))
		s1 := sha1.Sum(joined) //nolint:gosec
		s256 := sha256.Sum256(joined)
		if got := hex.EncodeToString(SHA1.digest(parts...)); got != hex.EncodeToString(s1[:]) {
			t.Errorf("sha1 of %d bytes: %s", n+16, got)
		}
		if got := hex.EncodeToString(SHA256.digest(parts...)); got != hex.EncodeToString(s256[:]) {
			t.Errorf("sha256 of %d bytes: %s", n+16, got)
		}
	}
}

func TestDigestUnknownAlgorithmPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown algorithm signed quietly")
		}
	}()
	Algorithm("md5").digest("a")
}
