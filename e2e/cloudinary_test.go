package e2e

import (
	"strings"
	"testing"

	"github.com/brokerdev/broker/internal/testdb"
)

// startCloudinaryStack runs `broker emulate` and `broker serve` against a
// fresh database, wired the way the README tells a user to.
func startCloudinaryStack(t *testing.T) (broker, emu *process) {
	t.Helper()
	emu = start(t, map[string]string{"ADDR": "127.0.0.1:0", "CLOUDINARY_URL": cloudinaryURL}, "emulate")
	broker = start(t, map[string]string{
		"ADDR":                     "127.0.0.1:0",
		"DATABASE_URL":             testdb.PostgresURL(t),
		"CLOUDINARY_URL":           cloudinaryURL,
		"CLOUDINARY_UPLOAD_PREFIX": emu.URL + "/cloudinary",
		"CLOUDINARY_DELIVERY_URL":  emu.URL + "/cloudinary",
		"AUTH_JWT_SECRET":          jwtSecret,
		"RATE_LIMIT_PER_MINUTE":    "0",
	}, "serve")
	return broker, emu
}

// TestCloudinaryFlowScript runs docs/examples/cloudinary-flow.sh: the issue's
// acceptance walk-through with curl, refusals included.
func TestCloudinaryFlowScript(t *testing.T) {
	broker, _ := startCloudinaryStack(t)
	out := runScript(t, "docs/examples/cloudinary-flow.sh", map[string]string{
		"BROKER_URL":   broker.URL,
		"BROKER_TOKEN": token(t, "alice"),
		"OTHER_TOKEN":  token(t, "bob@example.com"),
	})
	if !strings.Contains(out, "OK: cloudinary flow complete") {
		t.Fatalf("script did not finish:\n%s", out)
	}
}
