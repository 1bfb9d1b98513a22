package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/brokerdev/broker/bench/load"
)

// report is everything one run measured; it is printed and written to
// BENCH_OUT as JSON.
type report struct {
	Machine     machine       `json:"machine"`
	Settings    reportConfig  `json:"settings"`
	Micro       []microResult `json:"micro,omitempty"`
	Signing     []runResult   `json:"signing"`
	Saving      []runResult   `json:"saving"`
	BrokerRSS   rssReport     `json:"broker_rss"`
	ServerRSS   []serverRSS   `json:"server_rss"`
	Preflight   []string      `json:"preflight"`
	StartedAt   time.Time     `json:"started_at"`
	ElapsedSecs float64       `json:"elapsed_s"`
}

type reportConfig struct {
	Rounds      int    `json:"rounds"`
	Duration    string `json:"duration"`
	Warmup      string `json:"warmup"`
	Concurrency []int  `json:"concurrency"`
	Pinned      bool   `json:"pinned"`
	DBPool      int    `json:"db_pool"`
}

// runResult is one target at one concurrency.
type runResult struct {
	Target string `json:"target"`
	Round  int    `json:"round"`
	load.Result
	// ServerCPU and GeneratorCPU are the cores each used on average over
	// the run (warm-up included); MachineBusy is the share of all the
	// machine's CPU time that was busy, whoever used it.
	ServerCPU    float64 `json:"server_cpu"`
	GeneratorCPU float64 `json:"generator_cpu"`
	// DatabaseCPU is what the PostgreSQL server's processes used, when it
	// runs on this machine (saving runs only).
	DatabaseCPU float64 `json:"database_cpu,omitempty"`
	MachineBusy float64 `json:"machine_busy"`
}

type rssReport struct {
	Idle    int64  `json:"idle_bytes"`    // after start and the preflight
	Signing int64  `json:"signing_bytes"` // VmHWM over the signing sweep
	Saving  int64  `json:"saving_bytes"`  // VmHWM over the saving sweep
	Peak    int64  `json:"peak_bytes"`    // VmHWM since start
	Note    string `json:"note,omitempty"`
}

type serverRSS struct {
	Name string `json:"name"`
	Peak int64  `json:"peak_bytes"`
}

// Target names, as printed.
const (
	tCeiling    = "ceiling"
	tBrokerSign = "broker GET /generate-signature"
	tHono       = "guide's Hono server"
	tBrokerSave = "broker POST /save-metadata"
	tRawInsert  = "raw pgx INSERT"
)

func run(ctx context.Context, s settings) error {
	start := time.Now()
	out := os.Stdout
	rep := &report{
		Machine:   describeMachine(),
		StartedAt: start.UTC(),
		Settings: reportConfig{Rounds: s.rounds, Duration: s.duration.String(), Warmup: s.warmup.String(),
			Concurrency: s.concurrency, Pinned: s.pin, DBPool: s.pool},
	}
	printMachine(out, rep.Machine, s)

	if err := os.MkdirAll("bin", 0o755); err != nil {
		return err
	}
	if s.micro {
		fmt.Fprintf(out, "\n== Go micro-benchmarks (-benchtime %s; raw output in bin/bench-micro.txt)\n", s.microTime)
		raw, err := os.Create("bin/bench-micro.txt")
		if err != nil {
			return err
		}
		rep.Micro, err = runMicro(ctx, s, raw)
		raw.Close()
		if err != nil {
			return err
		}
		printMicro(out, rep.Micro)
	}

	fmt.Fprintln(out, "\n== Load: building and starting the servers")
	builds := [][2]string{{"bin/ceiling", "./bench/cmd/ceiling"}}
	if s.brokerBin == "" {
		s.brokerBin = "bin/broker"
		builds = append(builds, [2]string{s.brokerBin, "./cmd/broker"})
	}
	for _, b := range builds {
		if err := goBuild(ctx, s, b[0], b[1]); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "broker-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	db, err := createBenchDB(ctx, s.adminURL, s.pool)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.drop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "bench: drop database", db.name+":", err)
		}
	}()
	rep.Machine.PostgreSQL = db.version

	st, err := startStack(ctx, s, work, db)
	if err != nil {
		return err
	}
	defer st.stop()
	fmt.Fprintf(out, "broker %s (pid %d), emulator %s, ceiling %s, Hono %s; database %s as role %s (row-level security applies), pool_max_conns=%d\n",
		st.broker.addr, st.broker.pid(), st.emulator.addr, st.ceiling.addr, st.hono.addr, db.name, db.role, s.pool)
	rep.Preflight = st.preflight
	for _, line := range st.preflight {
		fmt.Fprintln(out, "preflight:", line)
	}

	maxConc := 0
	for _, c := range s.concurrency {
		maxConc = max(maxConc, c)
	}
	toks, err := tokens(maxConc)
	if err != nil {
		return err
	}

	rep.BrokerRSS.Idle, _ = vmRSS(st.broker.pid())
	hwmResettable := resetHWM(st.broker.pid()) == nil
	if !hwmResettable {
		rep.BrokerRSS.Note = "clear_refs not writable: the per-phase figures are the peak since start"
	}

	if s.phases["sign"] {
		if err := signSweep(ctx, s, out, st, toks, rep); err != nil {
			return err
		}
	}
	rep.BrokerRSS.Signing, _ = vmHWM(st.broker.pid())
	if hwmResettable {
		_ = resetHWM(st.broker.pid())
	}
	if s.phases["save"] {
		if err := saveSweep(ctx, s, out, st, db, toks, rep); err != nil {
			return err
		}
	}
	rep.BrokerRSS.Saving, _ = vmHWM(st.broker.pid())
	rep.BrokerRSS.Peak = max(rep.BrokerRSS.Signing, rep.BrokerRSS.Saving)
	for _, p := range []*proc{st.ceiling, st.hono} {
		if hwm, err := vmHWM(p.pid()); err == nil {
			rep.ServerRSS = append(rep.ServerRSS, serverRSS{Name: p.name, Peak: hwm})
		}
	}

	rep.ElapsedSecs = time.Since(start).Seconds()
	printSummary(out, s, rep)
	if err := writeJSON(s.out, rep); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nFigures as JSON in %s.\n", s.out)
	return nil
}

// signSweep drives GET /generate-signature of the ceiling, the broker and
// the guide's server, interleaved at each concurrency so that a change in
// the machine's state affects all three alike.
func signSweep(ctx context.Context, s settings, out io.Writer, st *stack, toks []string, rep *report) (err error) {
	fmt.Fprintf(out, "\n== Load: GET /generate-signature, %s per run after %s warm-up\n", s.duration, s.warmup)
	if s.perf {
		perf, err := startPerf("bin/perf-signing.data", st.broker.pid(), st.ceiling.pid())
		if err != nil {
			return err
		}
		defer func() {
			if perr := perf.stop(comm(s.brokerBin), "ceiling"); err == nil {
				err = perr
			}
		}()
	}
	sign := []struct {
		name string
		p    *proc
	}{{tCeiling, st.ceiling}, {tBrokerSign, st.broker}, {tHono, st.hono}}
	for round := 1; round <= s.rounds; round++ {
		for _, c := range s.concurrency {
			for _, t := range sign {
				r, err := measureHTTP(ctx, s, t.name, t.p, c, signatureTarget(t.p.addr, toks))
				if err != nil {
					return err
				}
				r.Round = round
				printRun(out, r)
				rep.Signing = append(rep.Signing, r)
			}
		}
	}
	return nil
}

// saveSweep drives POST /save-metadata of the broker and, at the same
// concurrency and pool size, raw INSERTs, each from an empty table.
func saveSweep(ctx context.Context, s settings, out io.Writer, st *stack, db *benchDB, toks []string, rep *report) (err error) {
	fmt.Fprintf(out, "\n== Load: POST /save-metadata against PostgreSQL, beside raw INSERTs (pool %d)\n", s.pool)
	if s.perf {
		perf, err := startPerf("bin/perf-saving.data", st.broker.pid())
		if err != nil {
			return err
		}
		defer func() {
			if perr := perf.stop(comm(s.brokerBin)); err == nil {
				err = perr
			}
		}()
	}
	nonce := randomHex(4)
	deliveryURL := "http://" + st.emulator.addr + "/cloudinary"
	for round := 1; round <= s.rounds; round++ {
		for _, c := range s.concurrency {
			if err := saveRound(ctx, s, out, st, db, toks, rep, round, c, fmt.Sprintf("%sr%dc%d", nonce, round, c), deliveryURL); err != nil {
				return err
			}
		}
	}
	return nil
}

// saveRound measures the broker's saves, then raw INSERTs, at c.
func saveRound(ctx context.Context, s settings, out io.Writer, st *stack, db *benchDB, toks []string, rep *report, round, c int, nonce, deliveryURL string) error {
	if err := db.reset(ctx); err != nil {
		return err
	}
	r, err := measureHTTP(ctx, s, tBrokerSave, st.broker, c, saveTarget(st.broker.addr, toks, deliveryURL, nonce))
	if err != nil {
		return err
	}
	stored, err := db.rows(ctx)
	if err != nil {
		return err
	}
	if stored < r.Requests {
		return fmt.Errorf("the broker answered 201 to %d saves but the table holds %d rows", r.Requests, stored)
	}
	r.Round = round
	printRun(out, r)
	rep.Saving = append(rep.Saving, r)

	if err := db.reset(ctx); err != nil {
		return err
	}
	if r, err = measureRawInsert(ctx, s, c, db.rawURL, nonce, deliveryURL); err != nil {
		return err
	}
	r.Round = round
	printRun(out, r)
	rep.Saving = append(rep.Saving, r)
	return nil
}

// comm is the name Linux gives a process started from path (at most 15
// bytes), which perf reports by.
func comm(path string) string {
	base := filepath.Base(path)
	return base[:min(len(base), 15)]
}

func goBuild(ctx context.Context, s settings, output, pkg string) error {
	argv := s.unpinned(s.goCmd, "build", "-o", output, pkg)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// measureHTTP drives one HTTP target and records the CPU each side used.
func measureHTTP(ctx context.Context, s settings, name string, p *proc, c int, t *load.HTTPTarget) (runResult, error) {
	cpu0, _ := cpuTime(p.pid())
	db0 := commCPU("postgres")
	gen0 := selfCPU()
	busy0 := machineTimes()
	wall0 := time.Now()
	res, err := load.Run(ctx, load.Config{Concurrency: c, Warmup: s.warmup, Duration: s.duration}, t.NewWorker)
	if err != nil {
		return runResult{}, fmt.Errorf("%s, %d connections: %w", name, c, err)
	}
	wall := time.Since(wall0)
	cpu1, _ := cpuTime(p.pid())
	r := runResult{
		Target:       name,
		Result:       res,
		ServerCPU:    (cpu1 - cpu0).Seconds() / wall.Seconds(),
		GeneratorCPU: (selfCPU() - gen0).Seconds() / wall.Seconds(),
		DatabaseCPU:  (commCPU("postgres") - db0).Seconds() / wall.Seconds(),
		MachineBusy:  machineTimes().busySince(busy0),
	}
	if err := p.alive(); err != nil {
		return r, err
	}
	if res.Requests == 0 {
		return r, fmt.Errorf("%s, %d connections: no request succeeded: %s", name, c, res.FirstError)
	}
	return r, nil
}

// measureRawInsert runs the raw-INSERT ceiling in a child process on the
// server core.
func measureRawInsert(ctx context.Context, s settings, c int, dbURL, nonce, deliveryURL string) (runResult, error) {
	self, err := os.Executable()
	if err != nil {
		return runResult{}, err
	}
	argv := s.pinned(self, rawInsertCommand, "-url", dbURL, "-c", fmt.Sprint(c),
		"-duration", s.duration.String(), "-warmup", s.warmup.String(), "-nonce", nonce, "-delivery", deliveryURL)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	busy0 := machineTimes()
	db0 := commCPU("postgres")
	wall0 := time.Now()
	outb, err := cmd.Output()
	dbCPU := (commCPU("postgres") - db0).Seconds() / time.Since(wall0).Seconds()
	if err != nil {
		return runResult{}, fmt.Errorf("%s, %d connections: %w", tRawInsert, c, err)
	}
	var rr rawResult
	if err := json.Unmarshal(outb, &rr); err != nil {
		return runResult{}, fmt.Errorf("%s: read its result: %w", tRawInsert, err)
	}
	if rr.Requests == 0 {
		return runResult{}, fmt.Errorf("%s, %d connections: no insert succeeded: %s", tRawInsert, c, rr.FirstError)
	}
	// The child's CPU covers its run (warm-up included) but not its start.
	runWall := s.warmup + s.duration
	return runResult{
		Target:      tRawInsert,
		Result:      rr.Result,
		ServerCPU:   rr.CPU.Seconds() / runWall.Seconds(),
		DatabaseCPU: dbCPU,
		MachineBusy: machineTimes().busySince(busy0),
	}, nil
}

// stack is the servers of one run.
type stack struct {
	emulator, broker, ceiling, hono *proc
	preflight                       []string
}

func (st *stack) stop() {
	for _, p := range []*proc{st.hono, st.ceiling, st.broker, st.emulator} {
		if p != nil {
			p.stop()
		}
	}
}

var (
	readyEmulator = regexp.MustCompile(`"msg":"emulator listening".*?"addr":"([^"]+)"`)
	readyCeiling  = regexp.MustCompile(`ceiling listening on (\S+)`)
	readyHono     = regexp.MustCompile(`seed baseline on (\d+)`)
)

// baseEnv is what every server inherits from the suite: enough to run,
// and nothing of the developer's broker settings.
func baseEnv(extra ...string) []string {
	env := []string{}
	for _, name := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return append(env, extra...)
}

func startStack(ctx context.Context, s settings, work string, db *benchDB) (st *stack, err error) {
	st = &stack{}
	defer func() {
		if err != nil {
			st.stop()
		}
	}()
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	cldURL := fmt.Sprintf("cloudinary://%s:%s@%s", apiKey, apiSecret, cloudName)

	// The emulator is the Cloudinary the broker is configured with. The
	// measured saves carry signed upload responses, so the broker asks it
	// nothing under load; the preflight uploads through it once.
	st.emulator, err = startProc(ctx, "emulator", work, baseEnv("ADDR=127.0.0.1:0", "CLOUDINARY_URL="+cldURL),
		readiness{line: readyEmulator}, abs(s.brokerBin), "emulate")
	if err != nil {
		return st, err
	}
	emu := "http://" + st.emulator.addr + "/cloudinary"
	// Told its port and probed on /healthz rather than read from its log:
	// BENCH_BROKER_ENV may set LOG_LEVEL=warn.
	port, err := freePort()
	if err != nil {
		return st, err
	}
	addr := fmt.Sprint("127.0.0.1:", port)
	st.broker, err = startProc(ctx, "broker", work, append(baseEnv(
		"ADDR="+addr,
		"DATABASE_URL="+brokerDBURL(db),
		"CLOUDINARY_URL="+cldURL,
		"CLOUDINARY_UPLOAD_PREFIX="+emu,
		"CLOUDINARY_DELIVERY_URL="+emu,
		"AUTH_JWT_SECRET="+jwtSecret,
		// On, so its cost is measured, but far above what one
		// connection can send, so it never refuses.
		"RATE_LIMIT_PER_MINUTE=100000000",
	), strings.Fields(os.Getenv("BENCH_BROKER_ENV"))...), readiness{addr: addr, healthPath: "/healthz"}, s.pinned(abs(s.brokerBin), "serve")...)
	if err != nil {
		return st, err
	}
	body, lines, err := preflight(ctx, st.broker.addr, "http://"+st.emulator.addr)
	if err != nil {
		return st, fmt.Errorf("preflight: %w", err)
	}
	st.preflight = lines

	bodyFile := filepath.Join(work, "signature.json")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		return st, err
	}
	st.ceiling, err = startProc(ctx, "ceiling", work, baseEnv(), readiness{line: readyCeiling},
		s.pinned(abs("bin/ceiling"), "-addr", "127.0.0.1:0", "-body", bodyFile)...)
	if err != nil {
		return st, err
	}

	honoDir, err := prepareHono(ctx, s)
	if err != nil {
		return st, err
	}
	if port, err = freePort(); err != nil {
		return st, err
	}
	st.hono, err = startProc(ctx, "hono", honoDir, baseEnv(
		fmt.Sprint("PORT=", port),
		"CLOUDINARY_CLOUD_NAME="+cloudName, "CLOUDINARY_API_KEY="+apiKey, "CLOUDINARY_API_SECRET="+apiSecret,
	), readiness{line: readyHono}, s.pinned("node", "server.js")...)
	return st, err
}

// brokerDBURL is the broker's DATABASE_URL: its own role, bound by
// row-level security, unless BENCH_BROKER_DB=admin asks for the
// administrative role (a superuser bypasses the policies), to measure what
// they cost.
func brokerDBURL(db *benchDB) string {
	if os.Getenv("BENCH_BROKER_DB") == "admin" {
		return db.rawURL
	}
	return db.brokerURL
}

// prepareHono copies the guide's server out of the shared, read-only
// baseline folder into bin/seed-hono and installs its pinned packages
// there with npm ci, unless the same lock file is installed already.
func prepareHono(ctx context.Context, s settings) (string, error) {
	dst, err := filepath.Abs("bin/seed-hono")
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", fmt.Errorf("node is needed to run the guide's server: %w", err)
	}
	lock, err := os.ReadFile(filepath.Join(s.honoDir, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("the guide's server (BENCH_HONO_DIR=%s): %w", s.honoDir, err)
	}
	installed, _ := os.ReadFile(filepath.Join(dst, "package-lock.json"))
	_, modErr := os.Stat(filepath.Join(dst, "node_modules"))
	for _, name := range []string{"package.json", "package-lock.json", "server.js"} {
		b, err := os.ReadFile(filepath.Join(s.honoDir, name))
		if err != nil {
			return "", err
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return "", err
		}
	}
	if modErr == nil && string(installed) == string(lock) {
		return dst, nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dst
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %w", dst, err)
	}
	return dst, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// machine describes where the figures come from.
type machine struct {
	CPUModel   string `json:"cpu_model"`
	CPUs       int    `json:"cpus"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Node       string `json:"node"`
	PostgreSQL string `json:"postgresql"`
	LoadAvg    string `json:"loadavg_at_start"`
}

func describeMachine() machine {
	m := machine{CPUs: machineCPUs(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadAvg = loadAvg()
	if b, err := exec.Command("node", "--version").Output(); err == nil {
		m.Node = strings.TrimSpace(string(b))
	}
	return m
}

func printMachine(w io.Writer, m machine, s settings) {
	pin := "off (BENCH_PIN=0 or one CPU): generator and servers share every CPU"
	if s.pin {
		pin = "load generator on CPU " + generatorCPU + ", each measured server (and the raw-INSERT client) on CPU " + serverCPU
	}
	fmt.Fprintf(w, "Machine: %s, %d CPUs, Linux %s, %s, node %s; load average at start %s\n", m.CPUModel, m.CPUs, m.Kernel, m.Go, m.Node, m.LoadAvg)
	fmt.Fprintf(w, "Pinning: %s\n", pin)
}
