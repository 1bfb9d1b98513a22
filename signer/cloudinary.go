package signer

import (
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// CloudinaryStringToSign builds the string Cloudinary hashes for an upload
// (or destroy, or any other signed Upload API call): parameters with an empty
// value are dropped, the rest are sorted byte-wise by name and rendered as
// "name=value" pairs joined with "&" (specs/cloudinary.md §1.1).
//
// With version >= 2 every "&" inside a pair becomes "%26". Without that step
// a value containing "&" is indistinguishable from two parameters, so a
// signed notification_url "…?a=1&tags=x" would also authorise an unsigned
// tags=x (§1.5). Nothing else is escaped: Cloudinary signs decoded form values.
//
// The whole map is signed. Leaving out file, cloud_name, resource_type,
// api_key and signature is the caller's job, as it is in the official SDKs.
func CloudinaryStringToSign(params map[string]string, version int) string {
	keys := make([]string, 0, len(params))
	size := 0
	for k, v := range params {
		if v != "" {
			keys = append(keys, k)
			size += len(k) + len(v) + 2
		}
	}
	slices.Sort(keys)

	var b strings.Builder
	b.Grow(size) // exact unless "&" is escaped: one allocation
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		writeEscaped(&b, k, version >= 2)
		b.WriteByte('=')
		writeEscaped(&b, params[k], version >= 2)
	}
	return b.String()
}

// writeEscaped writes s, with every "&" as "%26" when escape is set.
func writeEscaped(b *strings.Builder, s string, escape bool) {
	for escape {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString("%26")
		s = s[i+1:]
	}
	b.WriteString(s)
}

// SignCloudinary returns the lowercase hex digest of the string to sign with
// the secret appended. It is a plain digest, not an HMAC: that is Cloudinary's
// definition, and the vectors in specs/cloudinary-vectors.json pin it.
func SignCloudinary(params map[string]string, secret string, alg Algorithm, version int) string {
	return hex.EncodeToString(alg.digest(CloudinaryStringToSign(params, version), secret))
}

// VerifyCloudinaryUpload checks a submitted upload signature over params the
// way Cloudinary's server does, and returns the signature version that
// matched, or 0 when none did.
//
// The algorithm is not sent with the request, so it is inferred from the
// length of the hex (40 for SHA-1, 64 for SHA-256); hex case is ignored. The
// v2 string is tried first because every current SDK signs v2 by default;
// the v1 string is still accepted for older clients (§1.5). When no value
// contains "&" both strings are equal and the answer is 2.
//
// An empty secret never verifies: it would mean anyone can sign.
func VerifyCloudinaryUpload(params map[string]string, secret, signature string) (matchedVersion int) {
	alg, ok := algorithmForHexLen(len(signature))
	if !ok || secret == "" {
		return 0
	}
	signature = strings.ToLower(signature)
	for _, version := range []int{2, 1} {
		if Equal(signature, SignCloudinary(params, secret, alg, version)) {
			return version
		}
	}
	return 0
}

// SignCloudinaryResponse computes the signature Cloudinary puts in an upload
// response: the digest of "public_id=<id>&version=<n>" plus the secret. The
// SDKs always verify it with version-1 semantics (no "%26" escaping), so it
// is built here directly rather than through CloudinaryStringToSign.
func SignCloudinaryResponse(publicID string, version int64, secret string, alg Algorithm) string {
	return hex.EncodeToString(alg.digest("public_id=", publicID, "&version=", strconv.FormatInt(version, 10), secret))
}

// VerifyCloudinaryResponse checks an upload response's signature, which proves
// that Cloudinary (not the client) produced that public ID and version.
// Hex case is ignored; an empty secret never verifies.
func VerifyCloudinaryResponse(publicID string, version int64, secret, signature string, alg Algorithm) bool {
	if secret == "" {
		return false
	}
	return Equal(strings.ToLower(signature), SignCloudinaryResponse(publicID, version, secret, alg))
}

// SignCloudinaryNotification computes X-Cld-Signature for a webhook: the
// digest of the raw body, then the X-Cld-Timestamp header exactly as sent,
// then the secret (§4). Callers must pass the body bytes as received, before
// any JSON decoding, since re-encoding changes them.
func SignCloudinaryNotification(body []byte, timestamp string, secret string, alg Algorithm) string {
	return hex.EncodeToString(alg.digest(string(body), timestamp, secret))
}

// VerifyCloudinaryNotification checks X-Cld-Signature over the raw body and
// the X-Cld-Timestamp header. It does not judge the timestamp's age: how old a
// notification may be is the caller's policy (config WebhookMaxAge).
// Hex case is ignored; an empty secret never verifies.
func VerifyCloudinaryNotification(body []byte, timestamp, signature, secret string, alg Algorithm) bool {
	if secret == "" {
		return false
	}
	return Equal(strings.ToLower(signature), SignCloudinaryNotification(body, timestamp, secret, alg))
}

// CloudinaryURLSignature computes the value inside a delivery URL's
// "s--…--" component: unpadded URL-safe base64 of digest(toSign + secret),
// cut to length characters (8 normally, 32 for "long" signatures, which
// Cloudinary computes with SHA-256). toSign is the transformation and the
// public ID with its format, joined with "/", without the version (§5).
//
// A length outside 1..len(encoding) yields the whole encoding, so a bad
// argument gives a signature Cloudinary rejects rather than an empty one.
func CloudinaryURLSignature(toSign, secret string, alg Algorithm, length int) string {
	enc := base64.RawURLEncoding.EncodeToString(alg.digest(toSign, secret))
	if length <= 0 || length > len(enc) {
		return enc
	}
	return enc[:length]
}
