package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server the suite started.
type proc struct {
	name    string
	cmd     *exec.Cmd
	out     *output
	addr    string // host:port it listens on
	done    chan struct{}
	waitErr error
}

// readiness says how to tell that a server listens: a line of its output
// whose first group is the address (or only the port), or, for a server
// told its address, an answer to GET healthPath there.
type readiness struct {
	line       *regexp.Regexp
	addr       string
	healthPath string
}

// startProc starts argv in dir with env and waits until it is ready.
func startProc(ctx context.Context, name, dir string, env []string, ready readiness, argv ...string) (*proc, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	setPipeSize(w, 1<<20)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = w
	cmd.Stderr = w
	err = cmd.Start()
	w.Close() // the child has its own descriptor
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: newOutput(r), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ready.line != nil {
			if m := ready.line.FindSubmatch(p.out.start()); m != nil {
				addr := string(m[1])
				if !strings.Contains(addr, ":") {
					addr = "127.0.0.1:" + addr
				}
				p.addr = addr
				return p, nil
			}
		} else if healthy(ready.addr, ready.healthPath) {
			p.addr = ready.addr
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before listening (%v):\n%s", name, p.waitErr, p.out.last())
		case <-ctx.Done():
			p.stop()
			return nil, errInterrupted
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not start listening within 60s:\n%s", name, p.out.last())
		}
	}
}

// output drains a server's stdout and stderr through a pipe, as a
// container runtime or journald would, so the broker pays what it pays in
// production for its log line per request: one write to a pipe. The reader
// wakes every 20 ms and takes everything written meanwhile, so it costs
// the load generator's core next to nothing. It keeps the first and the
// last 16 KiB, for readiness lines and for error reports.
type output struct {
	mu    sync.Mutex
	first []byte
	tail  []byte
}

const keepOutput = 16 << 10

func newOutput(r *os.File) *output {
	o := &output{}
	go func() {
		defer r.Close()
		buf := make([]byte, 1<<20)
		for {
			n, err := r.Read(buf)
			o.add(buf[:n])
			if err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return o
}

func (o *output) add(b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := keepOutput - len(o.first); room > 0 {
		o.first = append(o.first, b[:min(room, len(b))]...)
	}
	o.tail = append(o.tail, b...)
	if len(o.tail) > keepOutput {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-keepOutput:]...)
	}
}

func (o *output) start() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.first)
}

func (o *output) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.tail)
}

// setPipeSize enlarges a pipe's buffer (F_SETPIPE_SZ) so that a burst of
// log lines between two reads never blocks the writer. Best effort.
func setPipeSize(f *os.File, size int) {
	const fSetPipeSz = 1031
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(size))
		})
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func healthy(addr, path string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop asks the process to end and kills it if it does not within 10s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// alive reports an error, with the end of its output, if the process has
// exited: a server that died mid-run explains the failed requests.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v):\n%s", p.name, p.waitErr, p.out.last())
	default:
		return nil
	}
}

// freePort asks the kernel for a free loopback port, for servers that
// cannot report the port they chose.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Memory and CPU of a process, from /proc.

// vmHWM is the peak resident set size of pid in bytes (VmHWM: the high
// water mark since start or since resetHWM).
func vmHWM(pid int) (int64, error) { return procStatusKB(pid, "VmHWM:") }

// vmRSS is the current resident set size of pid in bytes.
func vmRSS(pid int) (int64, error) { return procStatusKB(pid, "VmRSS:") }

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %s %q: %w", pid, field, rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// resetHWM sets pid's VmHWM back to its current RSS (proc(5),
// clear_refs value 5), so the next reading is the peak of one phase.
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// cpuTime is the user+system CPU time pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, may hold spaces; fields after it are
	// counted from its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	// utime and stime are fields 14 and 15, i.e. 11 and 12 after ')'.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: malformed times", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// selfCPU is the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perfRecord samples the CPU of pids with Linux perf until stopped: the
// whole process, kernel included, as the load run sees it. BENCH_PERF=1
// turns it on; the report goes beside the data file.
type perfRecord struct {
	cmd  *exec.Cmd
	data string
}

func startPerf(data string, pids ...int) (*perfRecord, error) {
	list := make([]string, len(pids))
	for i, p := range pids {
		list[i] = strconv.Itoa(p)
	}
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "2999", "-g", "-o", data, "-p", strings.Join(list, ","))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return &perfRecord{cmd: cmd, data: data}, nil
}

// stop ends the recording and writes one flat report per command name.
func (p *perfRecord) stop(comms ...string) error {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	for _, comm := range comms {
		out, err := exec.Command("perf", "report", "-i", p.data, "--stdio", "--no-children", "--comm", comm,
			"--sort", "symbol", "--percent-limit", "0.5", "-g", "none").Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		if err := os.WriteFile(strings.TrimSuffix(p.data, ".data")+"-"+comm+".txt", out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// commCPU is the CPU time used by every process named comm (the database
// server's backends: "postgres"), read from /proc. A process that exits
// between two readings takes its time with it; the pools' connections
// live through a run.
func commCPU(comm string) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(b)) != comm {
			continue
		}
		if t, err := cpuTime(pid); err == nil {
			total += t
		}
	}
	return total
}
