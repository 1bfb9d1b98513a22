package signer

import (
	"crypto/sha1" //nolint:gosec // Cloudinary's protocol is defined over SHA-1; it is not our choice.
	"crypto/sha256"
	"fmt"
	"hash"
	"strings"
)

// Algorithm names the digest a provider signature is computed with.
type Algorithm string

// Digests Cloudinary accepts. SHA1 is Cloudinary's default; an account may
// be switched to SHA256 (CLOUDINARY_SIGNATURE_ALGORITHM).
const (
	SHA1   Algorithm = "sha1"
	SHA256 Algorithm = "sha256"
)

// ParseAlgorithm turns a configuration value into an Algorithm. Case and
// surrounding blanks are ignored, because people type "SHA256" in .env files.
func ParseAlgorithm(s string) (Algorithm, error) {
	switch a := Algorithm(strings.ToLower(strings.TrimSpace(s))); a {
	case SHA1, SHA256:
		return a, nil
	default:
		return "", fmt.Errorf("signer: unknown signature algorithm %q (want %q or %q)", s, SHA1, SHA256)
	}
}

// newHash returns a fresh hash for a. The zero Algorithm means SHA1, the
// provider default, so a caller that never set one still signs the way the
// official SDKs do. Any other value is a programming error (configuration is
// validated with ParseAlgorithm long before anything is signed), and signing
// with a guessed digest would only produce signatures nobody accepts, so it
// panics instead of failing quietly.
func (a Algorithm) newHash() hash.Hash {
	switch a {
	case SHA1, "":
		return sha1.New() //nolint:gosec // see import
	case SHA256:
		return sha256.New()
	default:
		panic(fmt.Sprintf("signer: unknown signature algorithm %q", string(a)))
	}
}

// digest hashes the concatenation of parts. Provider signatures are plain
// digests over "payload + secret", not HMACs, so concatenation is the whole
// construction.
func (a Algorithm) digest(parts ...string) []byte {
	h := a.newHash()
	for _, p := range parts {
		h.Write([]byte(p)) // hash.Hash.Write never returns an error
	}
	return h.Sum(nil)
}

// algorithmForHexLen infers the digest from the length of a hex signature.
// Cloudinary does not transmit the algorithm (specs/cloudinary.md §1.2), so
// the length is the only evidence: 40 hex digits for SHA-1, 64 for SHA-256.
func algorithmForHexLen(n int) (Algorithm, bool) {
	switch n {
	case sha1.Size * 2:
		return SHA1, true
	case sha256.Size * 2:
		return SHA256, true
	default:
		return "", false
	}
}
