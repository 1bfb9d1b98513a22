package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// chromiumPath is Debian's chromium package; CI installs it.
const chromiumPath = "/usr/bin/chromium"

// TestDemoPageInChromium drives the demo page of `broker dev` in headless
// Chromium with playwright-core (interop/browser, pinned in its lock file):
// for each provider a PNG goes up, is listed with its thumbnail loaded and
// is deleted; a refused upload and an expired token show their messages.
// Set SCREENSHOT_DIR to keep screenshots of the page.
func TestDemoPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser test needs Debian's Chromium at %s (apt-get install -y chromium; CI installs it): %v", chromiumPath, err)
	}
	// playwright-core needs Node 20 or later; Debian 12's own nodejs is 18.
	if out, err := exec.Command("node", "-p", "process.versions.node.split('.')[0] >= 20").Output(); err != nil || strings.TrimSpace(string(out)) != "true" {
		t.Fatalf("the browser test needs Node.js 20 or later for playwright-core (CI installs it): node says %q, %v", out, err)
	}
	dir := filepath.Join(repoRoot, "interop", "browser")
	npmCI(t, dir)
	p := start(t, devEnv(), "dev")
	env := map[string]string{
		"BROKER_URL":    p.URL,
		"BROKER_TOKEN":  devToken(t, p),
		"EXPIRED_TOKEN": expiredToken(t, "dev-user"),
		"CHROMIUM":      chromiumPath,
	}
	if shots := os.Getenv("SCREENSHOT_DIR"); shots != "" {
		env["SCREENSHOT_DIR"] = shots
	}
	out := nodeTest(t, dir, env, "demo.test.mjs")
	t.Logf("node --test demo.test.mjs:\n%s", tapSummary(out))
}

// expiredToken is a well-signed token for user that expired an hour ago
// (broker token refuses to make one).
func expiredToken(t *testing.T, user string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
