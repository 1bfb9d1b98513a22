package signer

import (
	"strings"
	"testing"
)

// fuzzParams decodes the fuzzer's string into a parameter map: one
// "key<TAB>value" per line, a line without a tab being a key with an empty
// value. Keys and values may hold anything else, "&" and "=" included, which
// is exactly where the string to sign could become ambiguous.
func fuzzParams(encoded string) map[string]string {
	params := map[string]string{}
	for _, line := range strings.Split(encoded, "\n") {
		k, v, _ := strings.Cut(line, "\t")
		params[k] = v
	}
	return params
}

// FuzzCloudinaryStringToSign checks invariants of Cloudinary signing that
// must hold for every parameter map, not just the reference vectors. Seeds
// live in testdata/fuzz/FuzzCloudinaryStringToSign as well as below; run
// `go test -fuzz FuzzCloudinaryStringToSign ./signer` to search further.
func FuzzCloudinaryStringToSign(f *testing.F) {
	f.Add("timestamp\t1700000000\nfolder\tuser-uploads/42\npublic_id\tavatar_42", "test_secret_123", 2)
	f.Add("notification_url\thttps://fake.com/callback?a=1&tags=hello,world\ntimestamp\t1568810420", "s", 1)
	f.Add("a&b\tc&d\n&\t&\nempty\n\t=", "k", 2)
	f.Add("", "", 0)

	f.Fuzz(func(t *testing.T, encoded, secret string, version int) {
		params := fuzzParams(encoded)
		nonEmpty := 0
		hasAmp := false
		for k, v := range params {
			if v != "" {
				nonEmpty++
				hasAmp = hasAmp || strings.Contains(k+v, "&")
			}
		}

		v1 := CloudinaryStringToSign(params, 1)
		v2 := CloudinaryStringToSign(params, 2)

		// In v2 every raw "&" separates two pairs: the string cannot be read
		// as a different set of parameters.
		if nonEmpty == 0 {
			if v1 != "" || v2 != "" {
				t.Fatalf("no non-empty params, yet strings %q / %q", v1, v2)
			}
		} else if n := len(strings.Split(v2, "&")); n != nonEmpty {
			t.Fatalf("v2 string %q splits into %d pairs, want %d", v2, n, nonEmpty)
		}
		// v2 differs from v1 only by the escaping of "&".
		if (v1 != v2) != hasAmp {
			t.Fatalf("v1 %q and v2 %q: differ=%v, but a value or key with '&' present=%v", v1, v2, v1 != v2, hasAmp)
		}
		if strings.ReplaceAll(v2, "%26", "&") != strings.ReplaceAll(v1, "%26", "&") {
			t.Fatalf("v2 %q is not v1 %q with '&' escaped", v2, v1)
		}

		if secret == "" {
			if VerifyCloudinaryUpload(params, secret, SignCloudinary(params, secret, SHA1, version)) != 0 {
				t.Fatal("an empty secret verified")
			}
			return
		}
		wantVersion := 2
		if version < 2 && hasAmp {
			wantVersion = 1
		}
		extraKey := "\xff"
		for _, taken := params[extraKey]; taken; _, taken = params[extraKey] {
			extraKey += "\xff"
		}
		tampered := make(map[string]string, len(params)+1)
		for k, v := range params {
			tampered[k] = v
		}
		tampered[extraKey] = "1"

		for _, alg := range []Algorithm{SHA1, SHA256} {
			sig := SignCloudinary(params, secret, alg, version)
			if got := VerifyCloudinaryUpload(params, secret, sig); got != wantVersion {
				t.Fatalf("%s v%d: round trip matched version %d, want %d", alg, version, got, wantVersion)
			}
			if got := VerifyCloudinaryUpload(params, secret, strings.ToUpper(sig)); got != wantVersion {
				t.Fatalf("%s v%d: uppercase signature matched version %d, want %d", alg, version, got, wantVersion)
			}
			if got := VerifyCloudinaryUpload(tampered, secret, sig); got != 0 {
				t.Fatalf("%s v%d: an added parameter still verified (version %d)", alg, version, got)
			}
			if got := VerifyCloudinaryUpload(params, secret+"x", sig); got != 0 {
				t.Fatalf("%s v%d: another secret verified (version %d)", alg, version, got)
			}
		}
	})
}
