package signer

import "testing"

// Uploadcare's signatures, measured on inputs of the sizes the broker sends
// and receives. Uploadcare secrets are 20 characters; the URL-signing secret
// is hex.

const (
	benchUCSecret    = "3e5f1a2b9c8d7e6f5a4b"
	benchUCURLSecret = "73636b61519adede42191efe1e73f02f"
	benchUCPublicKey = "demopublickey1234567"
	benchUCUUID      = "1bac376c-aa7e-4356-861b-dd2657b5bfd2"
)

var benchUCWebhook = []byte(`{"hook":{"id":1,"project_id":1,"target":"https://broker.example.com/webhooks/uploadcare",` +
	`"event":"file.uploaded","is_active":true},"data":{"uuid":"` + benchUCUUID + `","size":12345,` +
	`"mime_type":"image/png","original_filename":"cat.png","is_image":true,"is_ready":true,` +
	`"metadata":{"broker_intent":"k3j5h7g9f1d3s5a7p9o1"},"datetime_uploaded":"2024-04-24T22:30:00Z"},` +
	`"file":"https://ucarecdn.com/` + benchUCUUID + `/","initiator":{"type":"api","detail":{"request_id":null}}}`)

func BenchmarkSignUploadcareUpload(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = SignUploadcareUpload(benchUCSecret, 1713999600)
	}
}

func BenchmarkVerifyUploadcareUpload(b *testing.B) {
	sig := SignUploadcareUpload(benchUCSecret, 1713999600)
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyUploadcareUpload(benchUCSecret, "1713999600", sig) {
			b.Fatal("signature does not verify")
		}
	}
}

// BenchmarkSignUploadcareREST signs the bodiless GET the broker sends to
// look a file up.
func BenchmarkSignUploadcareREST(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = SignUploadcareREST(benchUCSecret, "GET", nil, "application/json",
			"Wed, 24 Apr 2024 22:30:00 GMT", "/files/"+benchUCUUID+"/")
	}
}

func BenchmarkSignUploadcareWebhook(b *testing.B) {
	b.SetBytes(int64(len(benchUCWebhook)))
	b.ReportAllocs()
	for b.Loop() {
		sink = SignUploadcareWebhook(benchUCSecret, benchUCWebhook)
	}
}

func BenchmarkVerifyUploadcareWebhook(b *testing.B) {
	header := SignUploadcareWebhook(benchUCSecret, benchUCWebhook)
	b.SetBytes(int64(len(benchUCWebhook)))
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyUploadcareWebhook(benchUCSecret, benchUCWebhook, header) {
			b.Fatal("signature does not verify")
		}
	}
}

func BenchmarkUploadcareCNAMEPrefix(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink = UploadcareCNAMEPrefix(benchUCPublicKey)
	}
}

func BenchmarkUploadcareURLToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		tok, err := UploadcareURLToken(benchUCURLSecret, "/"+benchUCUUID+"/", 1713999600)
		if err != nil {
			b.Fatal(err)
		}
		sink = tok
	}
}
