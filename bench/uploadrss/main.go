// Command uploadrss measures the broker's peak memory while POST /upload
// streams files of growing size to Uploadcare. It builds the broker binary,
// runs `broker serve` against a throwaway PostgreSQL database and an
// in-process Uploadcare emulator, uploads each size once, and reports the
// broker's peak resident set size (VmHWM in /proc/PID/status) for each.
//
// The peak is reset before every upload by writing 5 to
// /proc/PID/clear_refs (Linux ≥ 4.0), so each figure is the peak of that
// upload alone, start-up included in none of them. If the broker streams,
// the figures stay flat as the size grows; if it buffered, they would grow
// by the file's size.
//
//	go run ./bench/uploadrss                      # 10 MB and 500 MB
//	go run ./bench/uploadrss -sizes 10MB,100MB,1GB
//
// PostgreSQL: TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres,
// as for the tests; a database is created for the run and dropped after.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/internal/brokerproc"
	"github.com/brokerdev/broker/internal/testdb"
)

const (
	publicKey = "uploadrsspublickey"
	secretKey = "uploadrss-secret-key"
	jwtSecret = "uploadrss-jwt-secret-0123456789abcdef"
)

func main() {
	sizes := flag.String("sizes", "10MB,500MB", "comma-separated upload sizes (B, KB, MB, GB are powers of 1000; KiB, MiB, GiB of 1024)")
	binary := flag.String("broker", "", "broker binary to run (default: build ./cmd/broker)")
	flag.Parse()
	if err := run(*sizes, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "uploadrss:", err)
		os.Exit(1)
	}
}

func run(sizeList, binary string) error {
	if runtime.GOOS != "linux" {
		return errors.New("reads /proc/PID/status, so it runs on Linux only")
	}
	var sizes []int64
	for _, s := range strings.Split(sizeList, ",") {
		n, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		sizes = append(sizes, n)
	}
	largest := sizes[0]
	for _, n := range sizes {
		largest = max(largest, n)
	}

	work, err := os.MkdirTemp("", "uploadrss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if binary == "" {
		binary = filepath.Join(work, "broker")
		fmt.Println("building the broker…")
		if err := brokerproc.Build(repoRoot(), binary, nil); err != nil {
			return fmt.Errorf("build broker: %w", err)
		}
	}

	// The emulator runs in this process, its files on disk: its memory is
	// not what is measured, and 500 MB kept in memory would only crowd the
	// machine. Its body limit is raised past the largest upload, since
	// Uploadcare's own /base/ limit (100 MB) would refuse the big ones.
	emu, err := emulator.New(emulator.Options{
		Uploadcare:   &emulator.UploadcareProject{PublicKey: publicKey, SecretKey: secretKey, SignedUploads: true},
		Dir:          filepath.Join(work, "emulator"),
		MaxBodyBytes: largest + 1<<20,
	})
	if err != nil {
		return err
	}
	defer emu.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	emuSrv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = emuSrv.Serve(ln) }()
	defer emuSrv.Close()
	emuURL := "http://" + ln.Addr().String()

	dbURL, dropDB, err := throwawayDatabase()
	if err != nil {
		return err
	}
	defer dropDB()

	broker, err := startBroker(binary, work, map[string]string{
		"ADDR":                  "127.0.0.1:0",
		"DATABASE_URL":          dbURL,
		"UPLOADCARE_PUBLIC_KEY": publicKey,
		"UPLOADCARE_SECRET_KEY": secretKey,
		"UPLOADCARE_UPLOAD_URL": emuURL + "/uploadcare/upload",
		"UPLOADCARE_API_URL":    emuURL + "/uploadcare/api",
		"UPLOADCARE_CDN_URL":    emuURL + "/uploadcare/cdn",
		"UPLOAD_MAX_BYTES":      strconv.FormatInt(largest, 10),
		"AUTH_JWT_SECRET":       jwtSecret,
		"RATE_LIMIT_PER_MINUTE": "0",
	})
	if err != nil {
		return err
	}
	defer broker.stop()

	tok, err := auth.IssueHS256([]byte(jwtSecret), "sub", "uploadrss", 6*time.Hour, "", "")
	if err != nil {
		return err
	}
	// One small upload first, so that connection pools and lazily built
	// state exist before anything is measured.
	if _, err := upload(broker.url, tok, 64<<10); err != nil {
		return fmt.Errorf("warm-up upload: %w", err)
	}
	idle, err := broker.memory()
	if err != nil {
		return err
	}
	fmt.Printf("\nbroker pid %d, built with %s, %d CPUs\n", broker.cmd.Process.Pid, runtime.Version(), runtime.NumCPU())
	fmt.Printf("after start-up and a 64 KiB warm-up: VmRSS %s, VmHWM %s\n\n", mib(idle.rss), mib(idle.hwm))
	fmt.Printf("%-10s  %-9s  %-10s  %-16s  %s\n", "size", "time", "throughput", "peak RSS (VmHWM)", "RSS after")
	for _, size := range sizes {
		if err := broker.resetPeak(); err != nil {
			return err
		}
		start := time.Now()
		got, err := upload(broker.url, tok, size)
		if err != nil {
			return fmt.Errorf("upload of %s: %w", human(size), err)
		}
		took := time.Since(start)
		if got != size {
			return fmt.Errorf("upload of %s: the broker recorded %d bytes", human(size), got)
		}
		m, err := broker.memory()
		if err != nil {
			return err
		}
		fmt.Printf("%-10s  %-9s  %-10s  %-16s  %s\n", human(size), took.Round(10*time.Millisecond),
			fmt.Sprintf("%.0f MB/s", float64(size)/1e6/took.Seconds()), mib(m.hwm), mib(m.rss))
	}
	return nil
}

// upload streams size bytes to POST /upload, without holding them: the
// body is generated as it is sent, with an exact Content-Length as a
// browser's form post has. It returns the bytes the broker recorded.
func upload(brokerURL, tok string, size int64) (int64, error) {
	const boundary = "uploadrss-boundary-7d1f0c2a"
	var head strings.Builder
	mw := multipart.NewWriter(&head)
	if err := mw.SetBoundary(boundary); err != nil {
		return 0, err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="bench.bin"`)
	h.Set("Content-Type", "application/octet-stream")
	if _, err := mw.CreatePart(h); err != nil {
		return 0, err
	}
	tail := "\r\n--" + boundary + "--\r\n"
	body := io.MultiReader(strings.NewReader(head.String()), io.LimitReader(pattern{}, size), strings.NewReader(tail))
	req, err := http.NewRequest(http.MethodPost, brokerURL+"/upload", body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = int64(head.Len()) + size + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	var ans struct {
		File struct {
			Bytes int64 `json:"bytes"`
		} `json:"file"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return 0, fmt.Errorf("answer %q: %w", raw, err)
	}
	return ans.File.Bytes, nil
}

// pattern yields an endless, cheap, non-constant byte stream.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return len(p), nil
}

type brokerProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

// startBroker runs `broker serve` with exactly env (plus PATH and HOME) and
// waits for its "listening" line to learn the address.
func startBroker(binary, dir string, env map[string]string) (*brokerProcess, error) {
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start broker: %w", err)
	}
	p := &brokerProcess{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var rec struct{ Msg, Addr, Level string }
			switch {
			case json.Unmarshal(sc.Bytes(), &rec) != nil || (rec.Level != "INFO" && rec.Level != "DEBUG"):
				fmt.Fprintln(os.Stderr, "broker:", sc.Text()) // warnings, errors, anything unexpected
			case rec.Msg == "broker listening":
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case a := <-addr:
		p.url = "http://" + a
		return p, nil
	case <-p.done:
		return nil, errors.New("the broker exited before listening")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("the broker did not listen within 30 s")
	}
}

func (p *brokerProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

type memory struct{ rss, hwm int64 } // bytes

// memory reads VmRSS and VmHWM (the peak since start or the last reset).
func (p *brokerProcess) memory() (memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse %s: %w", line, err)
		}
		if name == "VmRSS" {
			m.rss = kb << 10
		} else {
			m.hwm = kb << 10
		}
	}
	if m.hwm == 0 {
		return memory{}, errors.New("no VmHWM in /proc/PID/status")
	}
	return m, nil
}

// resetPeak sets VmHWM back to the current RSS (proc(5), clear_refs "5").
func (p *brokerProcess) resetPeak() error {
	err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
	if err != nil {
		return fmt.Errorf("reset peak RSS: %w", err)
	}
	return nil
}

// throwawayDatabase creates a database on the tests' PostgreSQL server and
// returns its URL and the function that drops it.
func throwawayDatabase() (string, func(), error) {
	admin := os.Getenv("TEST_DATABASE_URL")
	if admin == "" {
		admin = testdb.DefaultAdminURL
	}
	name := fmt.Sprintf("broker_uploadrss_%d", os.Getpid())
	adminExec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", redact(admin), err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	ident := pgx.Identifier{name}.Sanitize()
	if err := adminExec("CREATE DATABASE " + ident); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		if err := adminExec("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "uploadrss: drop database:", err)
		}
	}
	return u.String(), drop, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// repoRoot is the module's top folder, found from this file's path, so the
// program can be run from anywhere inside the checkout.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

var units = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

func parseSize(s string) (int64, error) {
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("bad size %q: give a unit, e.g. 10MB", s)
}

func human(n int64) string {
	switch {
	case n >= 1e9 && n%1e9 == 0:
		return fmt.Sprintf("%d GB", n/1e9)
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%d MB", n/1e6)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
