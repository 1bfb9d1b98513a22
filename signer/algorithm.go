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
//
// Short inputs, which is every signature of the request path, are joined
// in a buffer on the stack and hashed in one call that allocates nothing:
// a hash object and a copy of each part cost more than the hashing itself.
func (a Algorithm) digest(parts ...string) []byte {
	var stack [512]byte
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > len(stack) {
		h := a.newHash()
		for _, p := range parts {
			h.Write([]byte(p)) // hash.Hash.Write never returns an error
		}
		return h.Sum(nil)
	}
	buf := stack[:0]
	for _, p := range parts {
		buf = append(buf, p...)
	}
	switch a {
	case SHA1, "":
		sum := sha1.Sum(buf) //nolint:gosec // see import
		return sum[:]
	case SHA256:
		sum := sha256.Sum256(buf)
		return sum[:]
	default:
		return a.newHash().Sum(nil) // panics: see newHash
	}
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
