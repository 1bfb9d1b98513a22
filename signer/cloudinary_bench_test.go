package signer

import (
	"strconv"
	"testing"
)

// The benchmarks measure each Cloudinary function on inputs shaped like the
// broker's own traffic: the three or four params /generate-signature signs,
// a public ID under a user's folder, a webhook body of a few hundred bytes.
// `make bench` runs them; they assert nothing about time.

// benchSecret has the length of a real Cloudinary API secret (27 characters).
const benchSecret = "abcdefghijklmnopqrstuvwxyz0"

const benchPublicID = "uploads/user_2f9a8b7c6d5e4f30/k3j5h7g9f1d3s5a7p9o1"

// signParams is what metadata.Cloudinary.Sign signs for one upload.
func signParams() map[string]string {
	return map[string]string{
		"timestamp":        "1713997800",
		"public_id":        benchPublicID,
		"overwrite":        "false",
		"notification_url": "https://broker.example.com/webhooks/cloudinary",
	}
}

var benchNotification = []byte(`{"notification_type":"upload","timestamp":"2024-04-24T22:30:00+00:00",` +
	`"request_id":"4b1c1f2a9e8d7c6b5a4f","asset_id":"3f1c2b7d9e8a6c5b4f3e2d1c0b9a8f7e",` +
	`"public_id":"` + benchPublicID + `","version":1713997800,"version_id":"9f8e7d6c5b4a39281706f5e4d3c2b1a0",` +
	`"width":640,"height":480,"format":"png","resource_type":"image","created_at":"2024-04-24T22:30:00Z",` +
	`"bytes":12345,"type":"upload","etag":"0123456789abcdef0123456789abcdef",` +
	`"secure_url":"https://res.cloudinary.com/demo/image/upload/v1713997800/` + benchPublicID + `.png"}`)

// sink keeps the compiler from discarding the work being measured.
var sink string

func BenchmarkCloudinaryStringToSign(b *testing.B) {
	params := signParams()
	b.ReportAllocs()
	for b.Loop() {
		sink = CloudinaryStringToSign(params, 2)
	}
}

// BenchmarkSignCloudinaryByAlgorithm signs what /generate-signature signs,
// with each digest; BenchmarkSignCloudinary in cloudinary_test.go covers the
// spec's plain params.
func BenchmarkSignCloudinaryByAlgorithm(b *testing.B) {
	for _, alg := range []Algorithm{SHA1, SHA256} {
		b.Run(string(alg), func(b *testing.B) {
			params := signParams()
			b.ReportAllocs()
			for b.Loop() {
				sink = SignCloudinary(params, benchSecret, alg, 2)
			}
		})
	}
}

// BenchmarkVerifyCloudinaryUploadV2 is the common case, a v2 signature that
// matches at the first try (the emulator's check); the worst case, both
// versions computed, is BenchmarkVerifyCloudinaryUpload in cloudinary_test.go.
func BenchmarkVerifyCloudinaryUploadV2(b *testing.B) {
	params := signParams()
	for _, alg := range []Algorithm{SHA1, SHA256} {
		sig := SignCloudinary(params, benchSecret, alg, 2)
		b.Run(string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if VerifyCloudinaryUpload(params, benchSecret, sig) != 2 {
					b.Fatal("signature does not verify")
				}
			}
		})
	}
}

func BenchmarkSignCloudinaryResponse(b *testing.B) {
	for _, alg := range []Algorithm{SHA1, SHA256} {
		b.Run(string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = SignCloudinaryResponse(benchPublicID, 1713997800, benchSecret, alg)
			}
		})
	}
}

// BenchmarkVerifyCloudinaryResponse is the cryptographic part of every
// /save-metadata that carries a signed upload response.
func BenchmarkVerifyCloudinaryResponse(b *testing.B) {
	for _, alg := range []Algorithm{SHA1, SHA256} {
		sig := SignCloudinaryResponse(benchPublicID, 1713997800, benchSecret, alg)
		b.Run(string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !VerifyCloudinaryResponse(benchPublicID, 1713997800, benchSecret, sig, alg) {
					b.Fatal("signature does not verify")
				}
			}
		})
	}
}

func BenchmarkSignCloudinaryNotification(b *testing.B) {
	b.SetBytes(int64(len(benchNotification)))
	b.ReportAllocs()
	for b.Loop() {
		sink = SignCloudinaryNotification(benchNotification, "1713997800", benchSecret, SHA1)
	}
}

func BenchmarkVerifyCloudinaryNotification(b *testing.B) {
	sig := SignCloudinaryNotification(benchNotification, "1713997800", benchSecret, SHA1)
	b.SetBytes(int64(len(benchNotification)))
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyCloudinaryNotification(benchNotification, "1713997800", sig, benchSecret, SHA1) {
			b.Fatal("signature does not verify")
		}
	}
}

func BenchmarkCloudinaryURLSignature(b *testing.B) {
	toSign := "c_fill,h_300,w_400/" + benchPublicID + ".png"
	for _, tc := range []struct {
		alg    Algorithm
		length int
	}{{SHA1, 8}, {SHA256, 32}} {
		b.Run(string(tc.alg)+"/"+strconv.Itoa(tc.length), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = CloudinaryURLSignature(toSign, benchSecret, tc.alg, tc.length)
			}
		})
	}
}
