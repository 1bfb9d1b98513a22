package metadata_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/signer"
)

// The two Cloudinary use cases on the request path: Sign behind
// /generate-signature and Prove behind /save-metadata. Prove is measured
// with a signed upload response, the road that needs no provider call, so
// the figure is the broker's own validation cost; the Admin API road is
// bounded by Cloudinary's latency instead.

const (
	benchSecret = "abcdefghijklmnopqrstuvwxyz0"
	benchUser   = "user_2f9a8b7c6d5e4f30"
)

func benchCloudinary(alg signer.Algorithm) *metadata.Cloudinary {
	client := &cloudinary.Client{
		CloudName: "democloud", APIKey: "123456789012345", APISecret: benchSecret,
		UploadPrefix: "https://api.cloudinary.com", DeliveryURL: "https://res.cloudinary.com",
		Algorithm: alg,
	}
	return metadata.NewCloudinary(metadata.CloudinarySettings{
		CloudName: "democloud", APIKey: "123456789012345", APISecret: benchSecret,
		UploadPrefix: "https://api.cloudinary.com", Folder: "uploads", Algorithm: alg,
		TTL: 30 * time.Minute, NotificationURL: "https://broker.example.com/webhooks/cloudinary",
	}, client)
}

func BenchmarkCloudinarySign(b *testing.B) {
	for _, alg := range []signer.Algorithm{signer.SHA1, signer.SHA256} {
		b.Run(string(alg), func(b *testing.B) {
			c := benchCloudinary(alg)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Sign(benchUser, "image"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// signedEvidence is what a client forwards from Cloudinary's upload
// response, with a signature computed as Cloudinary computes it.
func signedEvidence(c *metadata.Cloudinary, alg signer.Algorithm, n int) metadata.CloudinaryEvidence {
	publicID := c.UserPrefix(benchUser) + "k3j5h7g9f1d3s5a7p9o" + strconv.Itoa(n)
	version := int64(1713997800)
	bytes, width, height := int64(12345), 640, 480
	format, name := "png", "cat"
	client := &cloudinary.Client{CloudName: "democloud", DeliveryURL: "https://res.cloudinary.com"}
	return metadata.CloudinaryEvidence{
		PublicID:         publicID,
		Version:          &version,
		Signature:        signer.SignCloudinaryResponse(publicID, version, benchSecret, alg),
		SecureURL:        client.DeliveryURLFor("image", version, publicID, format),
		ResourceType:     "image",
		Type:             "upload",
		Bytes:            &bytes,
		Format:           &format,
		Width:            &width,
		Height:           &height,
		OriginalFilename: &name,
	}
}

func BenchmarkCloudinaryProveSigned(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []signer.Algorithm{signer.SHA1, signer.SHA256} {
		b.Run(string(alg), func(b *testing.B) {
			c := benchCloudinary(alg)
			ev := signedEvidence(c, alg, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Prove(ctx, benchUser, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCloudinaryProveRejected is the cost of turning away a forged
// response, which an attacker can make the broker pay at will.
func BenchmarkCloudinaryProveRejected(b *testing.B) {
	ctx := context.Background()
	c := benchCloudinary(signer.SHA1)
	ev := signedEvidence(c, signer.SHA1, 0)
	ev.Signature = "0000000000000000000000000000000000000000"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Prove(ctx, benchUser, ev); err == nil {
			b.Fatal("forged signature accepted")
		}
	}
}
