package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/bench/load"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/signer"
)

// The account the broker and the emulator play. The secret has the length
// of a real Cloudinary API secret; the JWT secret is what HS256 needs.
const (
	cloudName    = "benchcloud"
	apiKey       = "123456789012345"
	apiSecret    = "abcdefghijklmnopqrstuvwxyz0"
	jwtSecret    = "bench-jwt-secret-0123456789abcdefghijklmnop"
	folder       = "uploads" // CLOUDINARY_FOLDER's default
	assetVersion = int64(1713997800)
)

var algorithm = signer.SHA1 // CLOUDINARY_SIGNATURE_ALGORITHM's default

// benchUser is the user of worker id: each connection acts for its own
// user, as a broker's clients do, so per-user work (a rate limiter's
// bucket, RLS settings) is spread as in production.
func benchUser(id int) string { return "bench-user-" + strconv.Itoa(id) }

// tokens are the workers' HS256 JWTs, made as `broker token` makes them.
func tokens(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		t, err := auth.IssueHS256([]byte(jwtSecret), "", benchUser(i), 2*time.Hour, "", "")
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// signatureTarget is GET /generate-signature with worker id's token. The
// ceiling and the Hono server get the same bytes: the ceiling ignores the
// header and the guide's server has no real authentication.
func signatureTarget(addr string, toks []string) *load.HTTPTarget {
	reqs := make([][]byte, len(toks))
	for i, t := range toks {
		reqs[i] = load.Render(nil, "GET", addr, "/generate-signature", []string{"Authorization", "Bearer " + t}, nil)
	}
	return &load.HTTPTarget{
		Addr:    addr,
		Request: func(dst []byte, id int, _ uint64) []byte { return append(dst, reqs[id]...) },
		Check:   hasFields("signature", "timestamp", "api_key"),
	}
}

// saveTarget is POST /save-metadata with the whole upload response
// Cloudinary would have sent the client for a fresh asset, signed with the
// account's secret: the broker verifies it and stores the record, and
// makes no Admin API call. nonce keeps public IDs unique across runs.
func saveTarget(addr string, toks []string, deliveryURL, nonce string) *load.HTTPTarget {
	ev := evidenceMaker{delivery: &cloudinary.Client{CloudName: cloudName, DeliveryURL: deliveryURL}}
	auths := make([]string, len(toks))
	for i, t := range toks {
		auths[i] = "Bearer " + t
	}
	bodies := make([][]byte, len(toks)) // one scratch buffer per worker
	return &load.HTTPTarget{
		Addr: addr,
		Request: func(dst []byte, id int, seq uint64) []byte {
			bodies[id] = ev.response(bodies[id][:0], publicID(nonce, id, seq))
			return load.Render(dst, "POST", addr, "/save-metadata",
				[]string{"Authorization", auths[id], "Content-Type", "application/json"}, bodies[id])
		},
		Expect: 201,
		Check:  hasFields("file"),
	}
}

// publicID is the asset of request seq of worker id: under the worker's
// user's prefix, as /generate-signature would have issued it.
func publicID(nonce string, id int, seq uint64) string {
	return folder + "/" + metadata.UserSegment(benchUser(id)) + "/" + nonce + "w" + strconv.Itoa(id) + "s" + strconv.FormatUint(seq, 10)
}

type evidenceMaker struct {
	delivery *cloudinary.Client
}

// response appends Cloudinary's upload response for publicID: every field
// of a real one (spec §2.4), as the seed guide's client forwards it.
func (m evidenceMaker) response(dst []byte, publicID string) []byte {
	secure := m.delivery.DeliveryURLFor("image", assetVersion, publicID, "png")
	sig := signer.SignCloudinaryResponse(publicID, assetVersion, apiSecret, algorithm)
	return fmt.Appendf(dst, `{"asset_id":"3f1c2b7d9e8a6c5b4f3e2d1c0b9a8f7e","public_id":%q,"version":%d,`+
		`"version_id":"9f8e7d6c5b4a39281706f5e4d3c2b1a0","signature":%q,"width":640,"height":480,`+
		`"format":"png","resource_type":"image","created_at":"2024-04-24T22:30:00Z","tags":[],"pages":1,`+
		`"bytes":12345,"type":"upload","etag":"0123456789abcdef0123456789abcdef","placeholder":false,`+
		`"url":%q,"secure_url":%q,"asset_folder":"","display_name":"cat","original_filename":"cat","api_key":%q}`,
		publicID, assetVersion, sig, secure, secure, apiKey)
}

// hasFields checks that an answer is a JSON object with success true and
// the named members.
func hasFields(names ...string) func([]byte) error {
	return func(body []byte) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("not a JSON object: %w", err)
		}
		if !bytes.Equal(m["success"], []byte("true")) {
			return errors.New(`no "success": true`)
		}
		for _, n := range names {
			if _, ok := m[n]; !ok {
				return fmt.Errorf("no %q", n)
			}
		}
		return nil
	}
}
