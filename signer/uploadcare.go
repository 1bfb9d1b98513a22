package signer

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // Uploadcare's REST signature is defined over an MD5 of the body; it is not our choice.
	"crypto/sha1" //nolint:gosec // ditto: the REST signature is an HMAC-SHA1.
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strconv"
	"strings"
)

// hmacHex returns the lowercase hex HMAC of the concatenated parts under key.
// Every Uploadcare signature is an HMAC (unlike Cloudinary's keyed digests),
// only the hash and the key's encoding differ, so they share this.
func hmacHex(newHash func() hash.Hash, key []byte, parts ...string) string {
	m := hmac.New(newHash, key)
	for _, p := range parts {
		m.Write([]byte(p)) // hash.Hash.Write never returns an error
	}
	return hex.EncodeToString(m.Sum(nil))
}

// SignUploadcareUpload computes the signature of a signed upload
// (specs/uploadcare.md §1.1): lowercase hex HMAC-SHA256 keyed with the
// project's secret key as UTF-8 bytes, over the decimal expire timestamp in
// seconds. Only the expiry is signed; binding an upload to a user is the
// caller's business (metadata intent).
func SignUploadcareUpload(secret string, expire int64) string {
	return signUploadcareExpire(secret, strconv.FormatInt(expire, 10))
}

func signUploadcareExpire(secret, expire string) string {
	return hmacHex(sha256.New, []byte(secret), expire)
}

// VerifyUploadcareUpload checks a signature against the expire field exactly
// as it was received. The string is not reparsed: the Upload API signs the
// characters sent, so "01893456000" and "1893456000" are different messages
// (§7 pitfall 3). Whether expire is a number and still in the future is the
// caller's check, since the Upload API reports those as separate errors.
// Hex case is ignored; an empty secret never verifies.
func VerifyUploadcareUpload(secret, expire, signature string) bool {
	if secret == "" {
		return false
	}
	return Equal(strings.ToLower(signature), signUploadcareExpire(secret, expire))
}

// SignUploadcareREST computes the signature of a REST API request for the
// "Authorization: Uploadcare <public_key>:<signature>" scheme (§4.2): hex
// HMAC-SHA1 keyed with the secret key, over five lines joined by "\n" with
// no trailing newline: the method in upper case, the hex MD5 of the exact
// body bytes, the Content-Type header as sent, the date header as sent, and
// the request URI (path and "?query", exactly as on the wire).
//
// The headers are taken verbatim because the server hashes what it received,
// not a normalised form; the method is upper-cased because HTTP methods are
// and the server sees them that way.
func SignUploadcareREST(secret, method string, body []byte, contentType, date, requestURI string) string {
	bodyMD5 := md5.Sum(body) //nolint:gosec // see import
	return hmacHex(sha1.New, []byte(secret),
		strings.ToUpper(method), "\n",
		hex.EncodeToString(bodyMD5[:]), "\n",
		contentType, "\n",
		date, "\n",
		requestURI)
}

// uploadcareWebhookPrefix is the scheme tag in front of the hex in
// X-Uc-Signature; it names the signature version.
const uploadcareWebhookPrefix = "v1="

// SignUploadcareWebhook computes the X-Uc-Signature value of a webhook
// (§5.4): "v1=" and the lowercase hex HMAC-SHA256 of the raw body, keyed
// with the signing secret as UTF-8 (it is not hex, unlike signed URL keys).
func SignUploadcareWebhook(secret string, body []byte) string {
	return uploadcareWebhookPrefix + hmacHex(sha256.New, []byte(secret), string(body))
}

// VerifyUploadcareWebhook checks an X-Uc-Signature header against the raw
// body as received, before any JSON decoding, since re-encoding changes the
// bytes (vectors W2). The whole header must match exactly: Uploadcare's own
// Python sample tests for a substring, which accepts any header that merely
// contains the right value. An empty secret or header never verifies, so an
// unsigned delivery is refused when a secret is configured (§7 pitfall 14).
func VerifyUploadcareWebhook(secret string, body []byte, header string) bool {
	if secret == "" || header == "" {
		return false
	}
	return Equal(header, SignUploadcareWebhook(secret, body))
}

// uploadcareCNAMELen is how many base-36 digits of the public key's hash
// make the CDN subdomain.
const uploadcareCNAMELen = 10

// UploadcareCNAMEPrefix returns the project's CDN subdomain, as in
// https://<prefix>.ucarecd.net (§3): the SHA-256 of the public key read as a
// big-endian unsigned integer, written in lowercase base 36, cut to its first
// 10 digits. Leading zero bytes vanish in the integer, which is why the
// digest is not base-36-encoded byte by byte.
func UploadcareCNAMEPrefix(publicKey string) string {
	sum := sha256.Sum256([]byte(publicKey))
	digits := new(big.Int).SetBytes(sum[:]).Text(36)
	if len(digits) > uploadcareCNAMELen {
		digits = digits[:uploadcareCNAMELen]
	}
	return digits
}

// ErrURLTokenSecret is returned by UploadcareURLToken when the signing secret
// is not a non-empty, even-length hex string. The secret itself is never
// part of the error.
var ErrURLTokenSecret = errors.New("signer: uploadcare URL signing secret must be non-empty hex")

// UploadcareURLToken builds the token of a signed CDN URL in ACL mode (§6),
// the Akamai EdgeAuth format Uploadcare's secure delivery uses:
// "exp=<exp>~acl=<acl>~hmac=<hex>", where hmac is the hex HMAC-SHA256 of
// "exp=<exp>~acl=<acl>" keyed with the hex-decoded secret. The URL is then
// https://<cdn-host><path>?token=<token>.
//
// acl is a path such as "/<uuid>/", "/<uuid>/*" or "/*". A "~" inside it
// (group IDs, "<uuid>~2") would be read as a field separator, so it is
// written as "%7e", as the official SDKs do, before signing.
func UploadcareURLToken(hexSecret, acl string, expire int64) (token string, err error) {
	key, err := hex.DecodeString(hexSecret)
	if err != nil || len(key) == 0 {
		// The decode error quotes the offending byte, a piece of the secret.
		return "", ErrURLTokenSecret
	}
	if !strings.HasPrefix(acl, "/") {
		return "", fmt.Errorf("signer: uploadcare URL token ACL %q must start with /", acl)
	}
	fields := "exp=" + strconv.FormatInt(expire, 10) + "~acl=" + strings.ReplaceAll(acl, "~", "%7e")
	return fields + "~hmac=" + akamaiHMAC(key, fields), nil
}

// akamaiHMAC signs the "~"-joined token fields of an EdgeAuth token. ACL
// mode and URL mode (§6) differ only in those fields.
func akamaiHMAC(key []byte, fields string) string {
	return hmacHex(sha256.New, key, fields)
}
