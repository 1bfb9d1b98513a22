// Command bench is the broker's benchmark suite, what `make bench` runs.
//
// In one run on one machine it
//
//  1. runs the Go micro-benchmarks of the hot paths (signers, JWT
//     verification per algorithm, the save path's proof) and summarises them;
//  2. builds bin/broker and bin/ceiling, creates a throwaway PostgreSQL
//     database and role, and starts `broker emulate`, `broker serve`, the
//     ceiling server and the Neon guide's Hono server;
//  3. drives each over loopback with the load generator of bench/load at
//     a sweep of concurrent connections: GET /generate-signature of the
//     broker, the ceiling and the Hono server; POST /save-metadata of the
//     broker beside raw single-row INSERTs through pgx with the same pool
//     size and concurrency;
//  4. prints throughput, p50/p99 latency, the CPU each side used, the
//     broker's peak RSS, and the ratios the targets are stated in.
//
// Settings come from the environment (all optional):
//
//	BENCH_DURATION      measured time per run (default 4s)
//	BENCH_ROUNDS        interleaved rounds of every run; the summary takes
//	                    each target's best (default 2)
//	BENCH_WARMUP        unmeasured time before each run (default 1s)
//	BENCH_CONCURRENCY   connections to sweep (default 1,4,16,64)
//	BENCH_PHASES        which load sweeps to run: sign, save (default both)
//	BENCH_MICRO         0 skips the micro-benchmarks
//	BENCH_MICRO_TIME    -benchtime of the micro-benchmarks (default 200ms)
//	BENCH_PIN           0 turns CPU pinning off (default on with 2+ CPUs)
//	BENCH_DB_POOL       pool_max_conns of the broker and of the raw INSERTs (default 4)
//	BENCH_DATABASE_URL  administrative PostgreSQL URL (default TEST_DATABASE_URL,
//	                    else postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
//	BENCH_HONO_DIR      the guide's server (default ../shared/baselines/seed-hono)
//	BENCH_PERF          1 samples the broker (and ceiling) with Linux perf: bin/perf-*.txt
//	BENCH_OUT           where the figures go as JSON (default bin/bench-results.json)
//	BENCH_BROKER        a broker binary to measure instead of building bin/broker
//	                    (to compare builds: before and after a change)
//	BENCH_BROKER_ENV    extra KEY=VALUE settings for the broker, blank-separated
//	BENCH_BROKER_DB     admin: the broker connects as the administrative role,
//	                    which row-level security does not bind (to measure it)
//	GO                  the go command (default go)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == rawInsertCommand {
		if err := rawInsertMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench rawinsert:", err)
			os.Exit(1)
		}
		return
	}
	s, err := loadSettings()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if s.pin && os.Getenv(pinnedEnv) == "" {
		// Never returns unless exec fails.
		err := reexecPinned()
		fmt.Fprintln(os.Stderr, "bench: pin the load generator:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, s); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type settings struct {
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	micro       bool
	microTime   string
	pin         bool
	perf        bool
	pool        int
	adminURL    string
	honoDir     string
	out         string
	goCmd       string
	brokerBin   string
	phases      map[string]bool
}

func loadSettings() (settings, error) {
	s := settings{
		rounds:      2,
		duration:    4 * time.Second,
		warmup:      time.Second,
		concurrency: []int{1, 4, 16, 64},
		micro:       os.Getenv("BENCH_MICRO") != "0",
		microTime:   envOr("BENCH_MICRO_TIME", "200ms"),
		pin:         os.Getenv("BENCH_PIN") != "0" && machineCPUs() >= 2,
		perf:        os.Getenv("BENCH_PERF") == "1",
		pool:        4,
		adminURL:    envOr("BENCH_DATABASE_URL", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")),
		honoDir:     envOr("BENCH_HONO_DIR", "../shared/baselines/seed-hono"),
		out:         envOr("BENCH_OUT", "bin/bench-results.json"),
		goCmd:       envOr("GO", "go"),
		brokerBin:   os.Getenv("BENCH_BROKER"),
		phases:      map[string]bool{},
	}
	var err error
	if v := os.Getenv("BENCH_DURATION"); v != "" {
		if s.duration, err = time.ParseDuration(v); err != nil || s.duration <= 0 {
			return s, fmt.Errorf("BENCH_DURATION=%q is not a positive duration such as 5s", v)
		}
	}
	if v := os.Getenv("BENCH_ROUNDS"); v != "" {
		if s.rounds, err = strconv.Atoi(v); err != nil || s.rounds < 1 {
			return s, fmt.Errorf("BENCH_ROUNDS=%q is not a positive number", v)
		}
	}
	if v := os.Getenv("BENCH_WARMUP"); v != "" {
		if s.warmup, err = time.ParseDuration(v); err != nil || s.warmup < 0 {
			return s, fmt.Errorf("BENCH_WARMUP=%q is not a duration such as 1s", v)
		}
	}
	if v := os.Getenv("BENCH_CONCURRENCY"); v != "" {
		s.concurrency = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || n > 4096 {
				return s, fmt.Errorf("BENCH_CONCURRENCY=%q: want a comma-separated list of connection counts such as 1,4,16,64", v)
			}
			s.concurrency = append(s.concurrency, n)
		}
	}
	for _, p := range strings.Split(envOr("BENCH_PHASES", "sign,save"), ",") {
		switch p = strings.TrimSpace(p); p {
		case "sign", "save":
			s.phases[p] = true
		default:
			return s, fmt.Errorf("BENCH_PHASES=%q: want sign, save or both", os.Getenv("BENCH_PHASES"))
		}
	}
	if v := os.Getenv("BENCH_DB_POOL"); v != "" {
		if s.pool, err = strconv.Atoi(v); err != nil || s.pool < 1 {
			return s, fmt.Errorf("BENCH_DB_POOL=%q is not a positive number", v)
		}
	}
	if _, err := time.ParseDuration(s.microTime); err != nil && !strings.HasSuffix(s.microTime, "x") {
		return s, fmt.Errorf("BENCH_MICRO_TIME=%q is not a -benchtime such as 200ms or 1000x", s.microTime)
	}
	return s, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Pinning. On a small machine the load generator takes CPU from the server
// it measures, and how much depends on the server: a server that needs
// more CPU per request loses more of it to the generator. Pinning the
// generator to one core and every measured server to another gives each
// server the same single core, whatever the generator needs, and makes
// the comparison with the single-threaded Node server like for like.
const (
	pinnedEnv = "BENCH_PINNED"
	// generatorCPU runs this process, hence the load generator;
	// serverCPU runs the measured servers and the raw-INSERT client.
	generatorCPU = "1"
	serverCPU    = "0"
)

// reexecPinned runs this program again under taskset on the generator's
// core; Go sizes GOMAXPROCS from the CPU affinity it starts with.
func reexecPinned() error {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("taskset not found (util-linux); install it or set BENCH_PIN=0: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(), pinnedEnv+"=1")
	argv := append([]string{"taskset", "-c", generatorCPU, self}, os.Args[1:]...)
	return syscall.Exec(taskset, argv, env)
}

// pinned returns argv prefixed with taskset onto the server core when
// pinning is on.
func (s settings) pinned(argv ...string) []string {
	if !s.pin {
		return argv
	}
	return append([]string{"taskset", "-c", serverCPU}, argv...)
}

// unpinned returns argv allowed on every CPU: children inherit this
// process's affinity, and the micro-benchmarks should have the machine.
func (s settings) unpinned(argv ...string) []string {
	if !s.pin {
		return argv
	}
	return append([]string{"taskset", "-c", "0-" + strconv.Itoa(machineCPUs()-1)}, argv...)
}

// machineCPUs counts the machine's CPUs. runtime.NumCPU would not do: once
// pinned, it counts only the CPUs this process may use.
func machineCPUs() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return max(n, 1)
}

var errInterrupted = errors.New("interrupted")
