package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/brokerdev/broker/config"
)

// minRSABits is the smallest RSA modulus accepted; shorter keys are
// factorable with public effort (NIST SP 800-131A).
const minRSABits = 2048

// verificationKey is one key the Verifier may check a signature with.
type verificationKey struct {
	kid string
	// alg, when set (JWKS "alg"), is the only algorithm this key may be used
	// with.
	alg string
	// key is []byte (HMAC), *rsa.PublicKey, *ecdsa.PublicKey or
	// ed25519.PublicKey: the types golang-jwt's methods expect.
	key any
}

// fits reports whether k may verify a signature made with alg. Checking the
// key type here, and not only trusting the method, is what stops an RSA
// public key from doubling as an HMAC secret.
func (k verificationKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	return slices.Contains(algorithmsFor(k.key), alg)
}

// algorithmsFor lists every algorithm a key of this type can verify.
func algorithmsFor(key any) []string {
	switch k := key.(type) {
	case []byte:
		return []string{"HS256", "HS384", "HS512"}
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		// ECDSA fixes the hash by the curve (RFC 7518 §3.4).
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// defaultAlgorithm is the algorithm a key implies when none is configured.
func defaultAlgorithm(key any) string {
	if _, ok := key.(*rsa.PublicKey); ok {
		return "RS256"
	}
	if algs := algorithmsFor(key); len(algs) > 0 {
		return algs[0]
	}
	return ""
}

// pinAlgorithms returns the configured algorithms when they all fit key, or
// the one the key implies when none are configured.
func pinAlgorithms(key any, configured []string) ([]string, error) {
	if len(configured) == 0 {
		return []string{defaultAlgorithm(key)}, nil
	}
	fit := algorithmsFor(key)
	for _, alg := range configured {
		if !slices.Contains(fit, alg) {
			return nil, &config.Error{Var: "AUTH_JWT_ALGORITHMS", Problem: fmt.Sprintf("%s does not fit the configured key (it takes %s)", alg, strings.Join(fit, ", "))}
		}
	}
	return slices.Clone(configured), nil
}

// secretKey makes the HMAC key of AUTH_JWT_SECRET.
func secretKey(secret string, configured []string) (verificationKey, []string, error) {
	// Below the hash's output size an HMAC key is weaker than the
	// algorithm (RFC 7518 §3.2 requires at least 256 bits for HS256).
	if len(secret) < 32 {
		return verificationKey{}, nil, &config.Error{Var: "AUTH_JWT_SECRET", Problem: "must be at least 32 bytes for HS256"}
	}
	key := []byte(secret)
	algs, err := pinAlgorithms(key, configured)
	if err != nil {
		return verificationKey{}, nil, err
	}
	return verificationKey{key: key}, algs, nil
}

// publicKeyFromConfig reads AUTH_JWT_PUBLIC_KEY: the PEM text itself, or the
// path of a file holding it.
func publicKeyFromConfig(value string, configured []string) (verificationKey, []string, error) {
	const name = "AUTH_JWT_PUBLIC_KEY"
	bad := func(format string, args ...any) error {
		return &config.Error{Var: name, Problem: fmt.Sprintf(format, args...)}
	}
	text := strings.TrimSpace(value)
	if !strings.HasPrefix(text, "-----BEGIN") {
		data, err := os.ReadFile(text)
		if err != nil {
			return verificationKey{}, nil, bad("is neither PEM text (-----BEGIN …) nor a readable file: %v", err)
		}
		text = string(data)
	}
	// A PEM pasted into a one-line environment variable often arrives with
	// literal "\n" in place of line breaks.
	if !strings.Contains(text, "\n") && strings.Contains(text, `\n`) {
		text = strings.ReplaceAll(text, `\n`, "\n")
	}
	key, err := parsePublicKeyPEM([]byte(text))
	if err != nil {
		return verificationKey{}, nil, bad("%v", err)
	}
	algs, err := pinAlgorithms(key, configured)
	if err != nil {
		return verificationKey{}, nil, err
	}
	return verificationKey{key: key}, algs, nil
}

// parsePublicKeyPEM accepts a PKIX "PUBLIC KEY", a PKCS#1 "RSA PUBLIC KEY" or
// a "CERTIFICATE", and returns a key of a supported type.
func parsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			// The broker only verifies; it should never hold the signing key.
			return nil, fmt.Errorf("holds a private key (%s); give the public key instead", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q is not a public key (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot parse the %s: %w", block.Type, err)
	}
	if err := checkPublicKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkPublicKey refuses key types and sizes the Verifier does not accept.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key has %d bits; at least %d are required", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if algorithmsFor(k) == nil {
			return fmt.Errorf("EC curve %s is not supported (want P-256, P-384 or P-521)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
	default:
		return fmt.Errorf("key type %T is not supported (want RSA, EC or Ed25519)", key)
	}
	return nil
}

// defaultJWKSAlgorithms are accepted from a JWKS when AUTH_JWT_ALGORITHMS is
// not set: the asymmetric algorithms identity providers sign with by default.
var defaultJWKSAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// jwksAlgorithms pins the algorithms accepted from a JWKS. HMAC is never one:
// a shared secret published in a key set would let anyone sign.
func jwksAlgorithms(configured []string) ([]string, error) {
	if len(configured) == 0 {
		return slices.Clone(defaultJWKSAlgorithms), nil
	}
	for _, alg := range configured {
		if strings.HasPrefix(alg, "HS") || !knownAsymmetric[alg] {
			return nil, &config.Error{Var: "AUTH_JWT_ALGORITHMS", Problem: fmt.Sprintf("%s cannot be used with AUTH_JWKS_URL (want RS*, PS*, ES* or EdDSA)", alg)}
		}
	}
	return slices.Clone(configured), nil
}

var knownAsymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}
