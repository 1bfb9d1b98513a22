package e2e

import (
	"bytes"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestCloudinarySDKInterop runs the official Node `cloudinary` package
// (interop/cloudinary, version pinned in its lock file) against `broker
// emulate`: once for an account on SHA-1 and once for one on SHA-256, with
// the SDK configured for the same digest through CLOUDINARY_URL alone.
// Node and npm are required; CI installs them.
func TestCloudinarySDKInterop(t *testing.T) {
	dir := filepath.Join(repoRoot, "interop", "cloudinary")
	npmCI(t, dir)
	for _, alg := range []string{"sha1", "sha256"} {
		t.Run(alg, func(t *testing.T) {
			emu := start(t, map[string]string{
				"ADDR":                           "127.0.0.1:0",
				"CLOUDINARY_URL":                 cloudinaryURL,
				"CLOUDINARY_SIGNATURE_ALGORITHM": alg,
			}, "emulate")
			sdkURL := cloudinaryURL + "?upload_prefix=" + url.QueryEscape(emu.URL+"/cloudinary")
			if alg != "sha1" {
				sdkURL += "&signature_algorithm=" + alg
			}
			out := nodeTest(t, dir, map[string]string{"CLOUDINARY_URL": sdkURL}, "sdk.test.mjs")
			t.Logf("node --test sdk.test.mjs (%s):\n%s", alg, tapSummary(out))
		})
	}
	// The same SDK against `broker dev`, whose emulator sits under
	// /emulator/ on the broker's own listener: what a newcomer points the
	// SDK at first.
	t.Run("broker dev", func(t *testing.T) {
		dev := start(t, map[string]string{"ADDR": "127.0.0.1:0", "CLOUDINARY_URL": cloudinaryURL}, "dev")
		sdkURL := cloudinaryURL + "?upload_prefix=" + url.QueryEscape(dev.URL+"/emulator/cloudinary")
		out := nodeTest(t, dir, map[string]string{"CLOUDINARY_URL": sdkURL}, "sdk.test.mjs")
		t.Logf("node --test sdk.test.mjs (broker dev):\n%s", tapSummary(out))
	})
}

// npmCI installs a Node test package exactly as its lock file says. It runs
// with the caller's whole environment, since npm may need its registry or
// proxy settings from there.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is required for %s (CI installs node and npm): %v", dir, err)
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

var (
	tapTests = regexp.MustCompile(`(?m)^# tests (\d+)$`)
	tapPass  = regexp.MustCompile(`(?m)^# pass (\d+)$`)
)

// nodeTest runs `node --test` on files in dir with env (plus PATH and HOME)
// and fails unless every test ran and passed; a run that finds no test
// fails too, so the Go test cannot pass vacuously.
func nodeTest(t *testing.T, dir string, env map[string]string, files ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required for %s (CI installs it): %v", dir, err)
	}
	cmd := exec.Command(node, append([]string{"--test", "--test-reporter=tap"}, files...)...)
	cmd.Dir = dir
	cmd.Env = environ(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	tests, pass := tapTests.FindStringSubmatch(out.String()), tapPass.FindStringSubmatch(out.String())
	switch {
	case runErr != nil:
		t.Fatalf("node --test %v in %s: %v\n%s", files, dir, runErr, out.String())
	case tests == nil || pass == nil || tests[1] != pass[1] || tests[1] == "0":
		t.Fatalf("node --test %v in %s: not every test ran and passed\n%s", files, dir, out.String())
	}
	return out.String()
}

// tapSummary keeps the result lines of TAP output, for the test log.
func tapSummary(tap string) string {
	var b bytes.Buffer
	for _, line := range regexp.MustCompile(`(?m)^(?:not )?ok \d+ - .*$`).FindAllString(tap, -1) {
		fmt.Fprintln(&b, line)
	}
	return b.String()
}
