package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/brokerdev/broker/signer"
)

// TestUploadcareClientInterop runs the official Node
// `@uploadcare/upload-client` (interop/uploadcare, version pinned in its
// lock file) against `broker emulate` with signatures and intents from
// `broker serve`, then saves through the broker. Node and npm are required;
// CI installs them.
func TestUploadcareClientInterop(t *testing.T) {
	dir := filepath.Join(repoRoot, "interop", "uploadcare")
	npmCI(t, dir)
	broker, emu := startUploadcareStack(t)
	// A pair made exactly as the broker makes them, whose expiry has
	// passed: the broker never hands one out, so the test makes it.
	expired := time.Now().Add(-time.Minute).Unix()
	out := nodeTest(t, dir, map[string]string{
		"BROKER_URL":        broker.URL,
		"ALICE_TOKEN":       token(t, "alice"),
		"BOB_TOKEN":         token(t, "bob"),
		"UPLOAD_URL":        emu.URL + "/uploadcare/upload",
		"CDN_URL":           emu.URL + "/uploadcare/cdn",
		"EXPIRED_SIGNATURE": signer.SignUploadcareUpload(ucSecretKey, expired),
		"EXPIRED_EXPIRE":    strconv.FormatInt(expired, 10),
	}, "upload-client.test.mjs")
	t.Logf("node --test upload-client.test.mjs:\n%s", tapSummary(out))
}
