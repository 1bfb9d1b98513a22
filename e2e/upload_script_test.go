package e2e

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brokerdev/broker/internal/testdb"
)

const uploadScript = "docs/examples/upload.sh"

// scriptRun is one run of docs/examples/upload.sh.
type scriptRun struct {
	stdout, stderr string
	code           int
}

// runUploadScript runs the script on file with env, keeping stdout (the
// URL) apart from stderr (progress and errors).
func runUploadScript(t *testing.T, env map[string]string, file string) scriptRun {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot, uploadScript), file)
	cmd.Env = environ(env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	run := scriptRun{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		run.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", uploadScript, err)
	}
	return run
}

// scriptFile writes a small PNG (the same bytes as the SDK interop test) to
// a name with a space and a comma, which curl's -F would split.
func scriptFile(t *testing.T) (string, []byte) {
	t.Helper()
	png, err := base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAIAAAASFvFNAAAAHUlEQVR4nGNgYDgRwHBiAcMJBoaKEwEVJxZUnAAAQiwH+SggQlEAAAAASUVORK5CYII=")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cat, sleeping.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, png
}

// TestUploadScriptDev is the check that docs/examples/upload.sh
// completes the flow against `broker dev`, for both providers: it prints
// one line, the URL of the saved file, which serves the uploaded bytes and
// is the URL the broker lists for the user.
func TestUploadScriptDev(t *testing.T) {
	// Nothing configured, as on a fresh machine; the token is the one the
	// banner tells the user to export.
	dev := start(t, map[string]string{"ADDR": "127.0.0.1:0"}, "dev")
	tok := devToken(t, dev)
	file, want := scriptFile(t)
	for _, provider := range []string{"cloudinary", "uploadcare"} {
		t.Run(provider, func(t *testing.T) {
			env := map[string]string{"BROKER_URL": dev.URL, "BROKER_TOKEN": tok}
			if provider != "cloudinary" { // the script's default
				env["PROVIDER"] = provider
			}
			run := runUploadScript(t, env, file)
			if run.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", run.code, run.stdout, run.stderr)
			}
			url, rest, _ := strings.Cut(run.stdout, "\n")
			if rest != "" || !strings.HasPrefix(url, dev.URL+"/emulator/") {
				t.Fatalf("stdout should be one emulator URL, got %q\nstderr: %s", run.stdout, run.stderr)
			}
			if status, got := fetch(t, url); status != 200 || !bytes.Equal(got, want) {
				t.Fatalf("GET %s = %d, %d bytes; want the %d uploaded", url, status, len(got), len(want))
			}
			if !listed(t, dev.URL, tok, provider, url) {
				t.Fatalf("%s is not among dev-user's %s files", url, provider)
			}
			t.Logf("%s\nstdout: %s", run.stderr, run.stdout)
		})
	}
}

// TestUploadScriptRefusals checks that every failure exits non-zero with a
// message on stderr naming the cause, prints nothing on stdout, and leaves
// no record. The provider's refusal comes from a broker whose secrets do
// not match the emulator's account: the misconfiguration a user most often
// meets (specs/cloudinary.md §8).
func TestUploadScriptRefusals(t *testing.T) {
	const ucPublic = "e2escriptpublickey00"
	emu := start(t, map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"CLOUDINARY_URL":        "cloudinary://123456789012345:the_real_secret@democloud",
		"UPLOADCARE_PUBLIC_KEY": ucPublic,
		"UPLOADCARE_SECRET_KEY": "the-real-uploadcare-secret",
	}, "emulate")
	broker := start(t, map[string]string{
		"ADDR":                     "127.0.0.1:0",
		"DATABASE_URL":             testdb.PostgresURL(t),
		"CLOUDINARY_URL":           cloudinaryURL, // same key and cloud, another secret
		"CLOUDINARY_UPLOAD_PREFIX": emu.URL + "/cloudinary",
		"CLOUDINARY_DELIVERY_URL":  emu.URL + "/cloudinary",
		"UPLOADCARE_PUBLIC_KEY":    ucPublic,
		"UPLOADCARE_SECRET_KEY":    "not-the-uploadcare-secret",
		"UPLOADCARE_UPLOAD_URL":    emu.URL + "/uploadcare/upload",
		"UPLOADCARE_API_URL":       emu.URL + "/uploadcare/api",
		"UPLOADCARE_CDN_URL":       emu.URL + "/uploadcare/cdn",
		"AUTH_JWT_SECRET":          jwtSecret,
		"RATE_LIMIT_PER_MINUTE":    "0",
	}, "serve")
	tok := token(t, "alice")
	file, _ := scriptFile(t)
	env := func(kv ...string) map[string]string {
		m := map[string]string{"BROKER_URL": broker.URL, "BROKER_TOKEN": tok}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		file string
		want []string // all on stderr
	}{
		{"no token", env("BROKER_TOKEN", ""), file, []string{"BROKER_TOKEN is not set"}},
		{"bad token", env("BROKER_TOKEN", "not.a.jwt"), file, []string{"the broker refused GET /generate-signature?provider=cloudinary (HTTP 401)", "(unauthorized)"}},
		{"unknown provider", env("PROVIDER", "s3"), file, []string{"PROVIDER must be cloudinary or uploadcare, not 's3'"}},
		{"missing file", env(), filepath.Join(t.TempDir(), "nope.png"), []string{"cannot read file"}},
		{"broker down", env("BROKER_URL", "http://127.0.0.1:1"), file, []string{"the broker at http://127.0.0.1:1 did not answer"}},
		{"cloudinary refuses", env(), file, []string{"the provider refused the upload (HTTP 401): Invalid Signature ", "String to sign - '"}},
		{"uploadcare refuses", env("PROVIDER", "uploadcare"), file, []string{"the provider refused the upload (HTTP 403): Invalid signature."}},
	} {
		t.Run(c.name, func(t *testing.T) {
			run := runUploadScript(t, c.env, c.file)
			if run.code == 0 || run.stdout != "" {
				t.Fatalf("want a failure with nothing on stdout, got exit %d\nstdout: %s\nstderr: %s", run.code, run.stdout, run.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(run.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, run.stderr)
				}
			}
			t.Logf("exit %d: %s", run.code, run.stderr)
		})
	}
	if r := call(t, "GET", broker.URL+"/files", tok, "", nil); r.Status != 200 || len(r.Body["files"].([]any)) != 0 {
		t.Fatalf("refusals left records: %d %s", r.Status, r.Raw)
	}
}

// listed reports whether the user's files of provider include one with url.
func listed(t *testing.T, base, tok, provider, url string) bool {
	t.Helper()
	r := call(t, "GET", base+"/files?limit=100&provider="+provider, tok, "", nil)
	if r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	for _, f := range r.Body["files"].([]any) {
		if f.(map[string]any)["url"] == url {
			return true
		}
	}
	return false
}
