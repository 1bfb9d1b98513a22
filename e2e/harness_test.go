// Package e2e drives the compiled broker binary: real processes, real
// PostgreSQL, the emulator over real HTTP.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/brokerdev/broker/internal/brokerproc"
)

// brokerBin is the binary built once for the package's tests.
var brokerBin string

// repoRoot is the checkout's top folder.
var repoRoot string

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "broker-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	brokerBin = filepath.Join(dir, "broker")
	// Built as the Dockerfile builds it (static, paths trimmed), so every
	// test runs what the image ships, and container_test.go's build with
	// the Dockerfile's own line only links again.
	if err := brokerproc.Build(repoRoot, brokerBin, []string{"CGO_ENABLED=0"}, "-trimpath"); err != nil {
		fmt.Fprintln(os.Stderr, "build broker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running broker command, stopped when its test ends.
type process struct {
	*brokerproc.Process
}

// start runs `broker args…` with exactly env (plus PATH/HOME) in an empty
// working directory, so no developer .env leaks in, and waits for its
// "listening" log line to learn the address.
func start(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	return startIn(t, t.TempDir(), env, args...)
}

// startIn is start in the working directory dir, for state kept there
// across restarts (`broker dev`'s .broker folder).
func startIn(t *testing.T, dir string, env map[string]string, args ...string) *process {
	t.Helper()
	bp, err := brokerproc.Start(brokerBin, dir, env, 30*time.Second, args...)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{bp}
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Stop interrupts the process and waits for it to exit.
func (p *process) Stop(t *testing.T) {
	if _, err := p.Process.Stop(os.Interrupt, 20*time.Second); err != nil {
		t.Errorf("%v after SIGINT:\n%s", err, p.Output())
	}
}

// runBroker runs a short-lived broker command and returns its output and exit status.
func runBroker(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(brokerBin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = environ(env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run broker %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func environ(env map[string]string) []string { return brokerproc.Environ(env) }

// token issues a JWT for user with the test secret.
func token(t *testing.T, user string) string {
	t.Helper()
	out, errOut, code := runBroker(t, map[string]string{"AUTH_JWT_SECRET": jwtSecret}, "token", "--sub", user, "--ttl", "1h")
	if code != 0 {
		t.Fatalf("broker token: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

const (
	jwtSecret     = "e2e-secret-e2e-secret-e2e-secret-0123"
	cloudinaryURL = "cloudinary://123456789012345:e2e_api_secret@democloud"
)

// runScript runs a bash script from the repo with env and fails the test
// with its output when it fails.
func runScript(t *testing.T, script string, env map[string]string) string {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot, script))
	cmd.Env = environ(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s failed: %v\n%s", script, err, out.String())
	}
	return out.String()
}
