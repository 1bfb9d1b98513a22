// Package brokerproc runs the compiled broker as a child process for the
// tests that drive the real binary (e2e, reliability): it starts a
// command, learns its address from the "… listening" log line, keeps its
// output, and stops it.
package brokerproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Build compiles ./cmd/broker of the checkout at repoRoot into out, with
// extra `go build` flags and environment (e.g. CGO_ENABLED=0).
func Build(repoRoot, out string, env []string, flags ...string) error {
	args := append(append([]string{"build"}, flags...), "-o", out, "./cmd/broker")
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), env...)
	build.Dir = repoRoot
	if msg, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/broker: %w\n%s", err, msg)
	}
	return nil
}

// Environ is exactly env plus PATH and HOME: no developer setting or .env
// of the caller's leaks into the broker.
func Environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// Process is a running broker command.
type Process struct {
	Addr string // host:port it listens on
	URL  string // http://Addr

	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// Start runs `bin args…` in dir with env (see Environ) and waits up to
// limit for its "listening" log line. On failure the process is gone and
// the error carries what it printed.
func Start(bin, dir string, env map[string]string, limit time.Duration, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = Environ(env)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	p := &Process{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start broker %v: %w", args, err)
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
	select {
	case p.Addr = <-addrc:
		p.URL = "http://" + p.Addr
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("broker %v exited before listening:\n%s", args, p.Output())
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-p.done
		return nil, fmt.Errorf("broker %v did not start within %v:\n%s", args, limit, p.Output())
	}
}

// Output returns what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Done is closed once the process has exited and its output is read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ExitCode is the exit status once Done is closed.
func (p *Process) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// ErrKilled reports a process that did not exit within Stop's limit.
var ErrKilled = errors.New("brokerproc: the broker did not stop in time and was killed")

// Stop sends sig (unless the process has exited already), waits up to
// limit, kills it after that, and returns the exit status.
func (p *Process) Stop(sig os.Signal, limit time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.ExitCode(), nil
	default:
	}
	_ = p.Signal(sig)
	select {
	case <-p.done:
		return p.ExitCode(), nil
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1, ErrKilled
	}
}
