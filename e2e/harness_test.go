// Package e2e drives the compiled broker binary: real processes, real
// PostgreSQL, the emulator over real HTTP.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
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
	build := exec.Command("go", "build", "-trimpath", "-o", brokerBin, "./cmd/broker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build broker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running broker command.
type process struct {
	cmd  *exec.Cmd
	Addr string // host:port it listens on
	URL  string // http://Addr
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Output returns what the process printed so far.
func (p *process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
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
	cmd := exec.Command(brokerBin, args...)
	cmd.Dir = dir
	cmd.Env = environ(env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &process{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start broker %v: %v", args, err)
	}
	addrc := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && strings.HasSuffix(rec.Msg, "listening") && rec.Addr != "" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() { p.Stop(t) })
	select {
	case p.Addr = <-addrc:
		p.URL = "http://" + p.Addr
		return p
	case <-p.done:
		t.Fatalf("broker %v exited before listening:\n%s", args, p.Output())
	case <-time.After(30 * time.Second):
		t.Fatalf("broker %v did not start within 30s:\n%s", args, p.Output())
	}
	return nil
}

// Stop sends SIGTERM and waits for the process to exit.
func (p *process) Stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("broker did not stop within 20s after SIGINT:\n%s", p.Output())
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

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

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
