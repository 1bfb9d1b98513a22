package signer

import (
	"strings"
	"testing"
)

const testSecret = "test_secret_123"

// ampParams has "&" inside values, so its v1 and v2 strings differ (vectors
// U7/U8).
func ampParams() map[string]string {
	return map[string]string{
		"timestamp":        "1700000000",
		"notification_url": "https://example.com/hook?a=1&b=2",
		"public_id":        "q=1&x",
	}
}

func plainParams() map[string]string {
	return map[string]string{
		"timestamp": "1700000000",
		"folder":    "user-uploads/42",
		"public_id": "avatar_42",
	}
}

func TestCloudinaryStringToSign(t *testing.T) {
	tests := []struct {
		name    string
		params  map[string]string
		version int
		want    string
	}{
		{"nil map", nil, 2, ""},
		{"only empty values", map[string]string{"folder": "", "tags": ""}, 2, ""},
		{"sorted byte-wise, empty dropped", map[string]string{"b": "2", "a": "1", "B": "3", "c": ""}, 2, "B=3&a=1&b=2"},
		{"no escaping besides &", map[string]string{"public_id": "a b/c=d,é+%"}, 2, "public_id=a b/c=d,é+%"},
		{"v2 escapes & in values", ampParams(), 2, "notification_url=https://example.com/hook?a=1%26b=2&public_id=q=1%26x&timestamp=1700000000"},
		{"v1 keeps &", ampParams(), 1, "notification_url=https://example.com/hook?a=1&b=2&public_id=q=1&x&timestamp=1700000000"},
		{"version 3 behaves as 2", map[string]string{"a": "x&y"}, 3, "a=x%26y"},
		{"version 0 behaves as 1", map[string]string{"a": "x&y"}, 0, "a=x&y"},
		{"v2 escapes & in keys too", map[string]string{"a&b": "1"}, 2, "a%26b=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CloudinaryStringToSign(tt.params, tt.version); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSignCloudinaryShape(t *testing.T) {
	for alg, n := range map[Algorithm]int{SHA1: 40, SHA256: 64, "": 40} {
		sig := SignCloudinary(plainParams(), testSecret, alg, 2)
		if len(sig) != n || sig != strings.ToLower(sig) {
			t.Errorf("%q: signature %q is not %d lowercase hex digits", alg, sig, n)
		}
	}
	if SignCloudinary(plainParams(), testSecret, "", 2) != SignCloudinary(plainParams(), testSecret, SHA1, 2) {
		t.Error("the zero Algorithm must sign as SHA1, Cloudinary's default")
	}
}

func TestSignCloudinaryPanicsOnUnknownAlgorithm(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for an unknown algorithm")
		}
	}()
	SignCloudinary(plainParams(), testSecret, "md5", 2)
}

func TestVerifyCloudinaryUpload(t *testing.T) {
	tampered := ampParams()
	tampered["public_id"] = "q=1&y"
	// The parameter smuggling that v2 exists to stop: under v1 these two
	// maps give the same string (vectors U16/U17).
	joined := map[string]string{"timestamp": "1", "notification_url": "https://x/cb?a=1&tags=t"}
	split := map[string]string{"timestamp": "1", "notification_url": "https://x/cb?a=1", "tags": "t"}
	extra := plainParams()
	extra["tags"] = "unsigned"
	dropped := plainParams()
	delete(dropped, "folder")

	tests := []struct {
		name      string
		params    map[string]string
		secret    string
		signature string
		want      int
	}{
		{"v2 sha1", ampParams(), testSecret, SignCloudinary(ampParams(), testSecret, SHA1, 2), 2},
		{"v1 sha1", ampParams(), testSecret, SignCloudinary(ampParams(), testSecret, SHA1, 1), 1},
		{"v2 sha256", ampParams(), testSecret, SignCloudinary(ampParams(), testSecret, SHA256, 2), 2},
		{"v1 sha256", ampParams(), testSecret, SignCloudinary(ampParams(), testSecret, SHA256, 1), 1},
		{"no & in values reports v2", plainParams(), testSecret, SignCloudinary(plainParams(), testSecret, SHA1, 1), 2},
		{"uppercase hex", plainParams(), testSecret, strings.ToUpper(SignCloudinary(plainParams(), testSecret, SHA256, 2)), 2},
		{"vector U4", plainParams(), testSecret, "97e9808f4647363daa9d13da08085232bbb38c9d", 2},
		{"tampered value", tampered, testSecret, SignCloudinary(ampParams(), testSecret, SHA1, 2), 0},
		{"added param", extra, testSecret, SignCloudinary(plainParams(), testSecret, SHA1, 2), 0},
		{"dropped param", dropped, testSecret, SignCloudinary(plainParams(), testSecret, SHA1, 2), 0},
		{"v2 signature does not cover a split param", split, "s", SignCloudinary(joined, "s", SHA1, 2), 0},
		// A v1 signature cannot tell the two apart: the split map's string
		// (which, with no "&" left in values, is its v2 string) equals the
		// joined map's v1 string. This is the weakness v2 fixes.
		{"v1 signature also covers a split param", split, "s", SignCloudinary(joined, "s", SHA1, 1), 2},
		{"wrong secret", plainParams(), "other_secret", SignCloudinary(plainParams(), testSecret, SHA1, 2), 0},
		{"empty secret", plainParams(), "", SignCloudinary(plainParams(), "", SHA1, 2), 0},
		{"truncated", plainParams(), testSecret, SignCloudinary(plainParams(), testSecret, SHA1, 2)[:39], 0},
		{"too long", plainParams(), testSecret, SignCloudinary(plainParams(), testSecret, SHA1, 2) + "0", 0},
		{"sha1 digest padded to sha256 length", plainParams(), testSecret, SignCloudinary(plainParams(), testSecret, SHA1, 2) + strings.Repeat("0", 24), 0},
		{"empty signature", plainParams(), testSecret, "", 0},
		{"not hex", plainParams(), testSecret, strings.Repeat("z", 40), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyCloudinaryUpload(tt.params, tt.secret, tt.signature); got != tt.want {
				t.Errorf("matched version %d, want %d", got, tt.want)
			}
		})
	}
}

func TestVerifyCloudinaryResponse(t *testing.T) {
	const id, version = "user-uploads/42/avatar_42", int64(1700000123)
	good := "95432d08bf20b43c6078519d10c88c6991ebcdfb" // vector R3
	tests := []struct {
		name      string
		publicID  string
		version   int64
		secret    string
		signature string
		alg       Algorithm
		want      bool
	}{
		{"valid", id, version, testSecret, good, SHA1, true},
		{"uppercase hex", id, version, testSecret, strings.ToUpper(good), SHA1, true},
		{"sha256", id, version, testSecret, SignCloudinaryResponse(id, version, testSecret, SHA256), SHA256, true},
		{"sha1 signature, sha256 account", id, version, testSecret, good, SHA256, false},
		{"other public id", id + "x", version, testSecret, good, SHA1, false},
		{"other version", id, version - 1, testSecret, good, SHA1, false},
		{"wrong secret", id, version, "nope", good, SHA1, false},
		{"empty secret", id, version, "", SignCloudinaryResponse(id, version, "", SHA1), SHA1, false},
		{"empty signature", id, version, testSecret, "", SHA1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyCloudinaryResponse(tt.publicID, tt.version, tt.secret, tt.signature, tt.alg); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSignCloudinaryResponseIsV1(t *testing.T) {
	// Response signatures never escape "&" (§3.1), whatever the upload used.
	id := "a&b"
	want := SignCloudinary(map[string]string{"public_id": id, "version": "7"}, testSecret, SHA1, 1)
	if got := SignCloudinaryResponse(id, 7, testSecret, SHA1); got != want {
		t.Errorf("got %s, want the v1 signature %s", got, want)
	}
}

func TestVerifyCloudinaryNotification(t *testing.T) {
	body := []byte(`{"notification_type":"upload","public_id":"uploads/u/x","version":1700000123}`)
	const ts = "1700000200"
	sig := SignCloudinaryNotification(body, ts, testSecret, SHA1)
	tests := []struct {
		name      string
		body      []byte
		timestamp string
		signature string
		secret    string
		alg       Algorithm
		want      bool
	}{
		{"valid", body, ts, sig, testSecret, SHA1, true},
		{"uppercase hex", body, ts, strings.ToUpper(sig), testSecret, SHA1, true},
		{"sha256", body, ts, SignCloudinaryNotification(body, ts, testSecret, SHA256), testSecret, SHA256, true},
		{"other timestamp", body, "1700000201", sig, testSecret, SHA1, false},
		{"re-encoded body", []byte(`{"notification_type": "upload","public_id":"uploads/u/x","version":1700000123}`), ts, sig, testSecret, SHA1, false},
		{"wrong secret", body, ts, sig, "nope", SHA1, false},
		{"empty secret", body, ts, SignCloudinaryNotification(body, ts, "", SHA1), "", SHA1, false},
		{"empty signature", body, ts, "", testSecret, SHA1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyCloudinaryNotification(tt.body, tt.timestamp, tt.signature, tt.secret, tt.alg); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCloudinaryURLSignature(t *testing.T) {
	full := CloudinaryURLSignature("sample.jpg", "b", SHA1, 0)
	if len(full) != 27 { // 20 bytes of SHA-1, unpadded base64
		t.Fatalf("full SHA-1 encoding has %d characters, want 27", len(full))
	}
	if strings.ContainsAny(full, "+/=") {
		t.Errorf("%q is not unpadded URL-safe base64", full)
	}
	if got := CloudinaryURLSignature("sample.jpg", "b", SHA1, 8); got != full[:8] || got != "v2fTPYTu" {
		t.Errorf("8-character signature = %q, want v2fTPYTu (vector S4)", got)
	}
	if got := CloudinaryURLSignature("sample.jpg", "b", SHA1, 100); got != full {
		t.Errorf("over-long length gives %q, want the whole encoding", got)
	}
	if got := CloudinaryURLSignature("sample.jpg", "b", SHA256, 0); len(got) != 43 {
		t.Errorf("full SHA-256 encoding has %d characters, want 43", len(got))
	}
}

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in      string
		want    Algorithm
		wantErr bool
	}{
		{"sha1", SHA1, false},
		{"sha256", SHA256, false},
		{" SHA256 ", SHA256, false},
		{"Sha1", SHA1, false},
		{"", "", true},
		{"md5", "", true},
		{"sha-256", "", true},
	}
	for _, tt := range tests {
		got, err := ParseAlgorithm(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"abc", "ABC", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func BenchmarkSignCloudinary(b *testing.B) {
	params := plainParams()
	for b.Loop() {
		SignCloudinary(params, testSecret, SHA1, 2)
	}
}

func BenchmarkVerifyCloudinaryUpload(b *testing.B) {
	params := ampParams()
	sig := SignCloudinary(params, testSecret, SHA256, 1) // worst case: both versions computed
	for b.Loop() {
		VerifyCloudinaryUpload(params, testSecret, sig)
	}
}
