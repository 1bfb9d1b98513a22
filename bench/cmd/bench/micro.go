package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// microPackages hold the micro-benchmarks of the request path: every
// signer, JWT verification per algorithm, the save path's proof, and the
// whole Echo handler of the two measured routes called in process.
var microPackages = []string{"./signer/", "./auth/", "./metadata/", "./bench/"}

// microResult is one line of `go test -bench` output.
type microResult struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  int64   `json:"bytes_per_op"`
	AllocsPerOp int64   `json:"allocs_per_op"`
}

// benchLine matches "BenchmarkName-2   123   456.7 ns/op ... 640 B/op   6 allocs/op".
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:.*?\s(\d+) B/op\s+(\d+) allocs/op)?`)

func runMicro(ctx context.Context, s settings, raw io.Writer) ([]microResult, error) {
	args := append([]string{s.goCmd, "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "-benchtime", s.microTime}, microPackages...)
	argv := s.unpinned(args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, raw)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test -bench: %w", err)
	}
	return parseMicro(&out), nil
}

func parseMicro(r io.Reader) []microResult {
	var res []microResult
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p[strings.LastIndexByte(p, '/')+1:]
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		b, _ := strconv.ParseInt(m[3], 10, 64)
		a, _ := strconv.ParseInt(m[4], 10, 64)
		res = append(res, microResult{Package: pkg, Name: strings.TrimPrefix(m[1], "Benchmark"), NsPerOp: ns, BytesPerOp: b, AllocsPerOp: a})
	}
	return res
}

func printMicro(w io.Writer, res []microResult) {
	fmt.Fprintln(w, "one goroutine unless the name says Parallel; ops/s = 1e9 / ns/op")
	width := len("benchmark")
	for _, r := range res {
		width = max(width, len(r.Package)+1+len(r.Name))
	}
	fmt.Fprintf(w, "  %-*s %10s %8s %7s %9s\n", width, "benchmark", "ns/op", "ops/s", "B/op", "allocs/op")
	for _, r := range res {
		fmt.Fprintf(w, "  %-*s %10.0f %8s %7d %9d\n", width, r.Package+"."+r.Name, r.NsPerOp, human(1e9/r.NsPerOp), r.BytesPerOp, r.AllocsPerOp)
	}
}

// human prints a rate with three significant figures and a k/M suffix.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}
