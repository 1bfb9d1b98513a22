package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// printRun prints one run as it finishes, so a long suite shows progress.
func printRun(w io.Writer, r runResult) {
	line := fmt.Sprintf("  %d %-31s c=%-3d %8.0f req/s  p50 %-8s p99 %-8s  server %.2f CPU (%5.1fµs/req)  generator %.2f CPU  machine %3.0f%% busy",
		r.Round, r.Target, r.Concurrency, r.RPS, ms(r.P50), ms(r.P99), r.ServerCPU, 1e6*ratio(r.ServerCPU, r.RPS), r.GeneratorCPU, 100*r.MachineBusy)
	if r.DatabaseCPU > 0 {
		line += fmt.Sprintf("  PostgreSQL %.2f CPU (%5.1fµs/req)", r.DatabaseCPU, 1e6*ratio(r.DatabaseCPU, r.RPS))
	}
	if r.Errors > 0 {
		line += fmt.Sprintf("  %d ERRORS, first: %s", r.Errors, r.FirstError)
	}
	fmt.Fprintln(w, line)
}

// ms prints a latency in milliseconds with three decimals.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + "ms"
}

// find returns the best round of target at c: the one with the highest
// throughput. Other load on the machine only ever slows a run down, so the
// best of interleaved rounds is the figure least disturbed by it.
func find(rs []runResult, target string, c int) (best runResult, ok bool) {
	for _, r := range rs {
		if r.Target == target && r.Concurrency == c && (!ok || r.RPS > best.RPS) {
			best, ok = r, true
		}
	}
	return best, ok
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

const mib = 1 << 20

// printSummary prints the tables the targets are stated in.
func printSummary(w io.Writer, s settings, rep *report) {
	fmt.Fprintf(w, "\n== Summary: best of %d rounds, %s measured per run after %s warm-up; latencies in ms\n", s.rounds, s.duration, s.warmup)
	var minCeil, minHono, minSave float64 = -1, -1, -1
	if len(rep.Signing) > 0 {
		fmt.Fprintln(w, "\nGET /generate-signature (broker: HS256 JWT; one core per server)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "conns\tceiling req/s\tp50\tp99\tbroker req/s\tp50\tp99\tHono req/s\tp50\tp99\tbroker÷ceiling\tbroker÷Hono\t")
		for _, c := range s.concurrency {
			ce, _ := find(rep.Signing, tCeiling, c)
			br, _ := find(rep.Signing, tBrokerSign, c)
			ho, _ := find(rep.Signing, tHono, c)
			rc, rh := ratio(br.RPS, ce.RPS), ratio(br.RPS, ho.RPS)
			minCeil, minHono = minOf(minCeil, rc), minOf(minHono, rh)
			fmt.Fprintf(tw, "%d\t%.0f\t%.3f\t%.3f\t%.0f\t%.3f\t%.3f\t%.0f\t%.3f\t%.3f\t%.0f%%\t%.1f×\t\n", c,
				ce.RPS, msf(ce.P50), msf(ce.P99), br.RPS, msf(br.P50), msf(br.P99), ho.RPS, msf(ho.P50), msf(ho.P99), 100*rc, rh)
		}
		_ = tw.Flush()
	}
	if len(rep.Saving) > 0 {
		fmt.Fprintf(w, "\nPOST /save-metadata (PostgreSQL, pool_max_conns=%d for both)\n", s.pool)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "conns\traw INSERT/s\tp50\tp99\tbroker saves/s\tp50\tp99\tbroker÷raw\t")
		for _, c := range s.concurrency {
			raw, _ := find(rep.Saving, tRawInsert, c)
			br, _ := find(rep.Saving, tBrokerSave, c)
			rs := ratio(br.RPS, raw.RPS)
			minSave = minOf(minSave, rs)
			fmt.Fprintf(tw, "%d\t%.0f\t%.3f\t%.3f\t%.0f\t%.3f\t%.3f\t%.0f%%\t\n", c,
				raw.RPS, msf(raw.P50), msf(raw.P99), br.RPS, msf(br.P50), msf(br.P99), 100*rs)
		}
		_ = tw.Flush()
	}

	lo, hi := s.concurrency[0], s.concurrency[len(s.concurrency)-1]
	fmt.Fprintf(w, "\nScaling %d→%d connections (throughput at %d ÷ at %d):", lo, hi, hi, lo)
	for _, t := range []struct {
		name string
		rs   []runResult
	}{{tCeiling, rep.Signing}, {tBrokerSign, rep.Signing}, {tHono, rep.Signing}, {tBrokerSave, rep.Saving}, {tRawInsert, rep.Saving}} {
		a, ok1 := find(t.rs, t.name, lo)
		b, ok2 := find(t.rs, t.name, hi)
		if ok1 && ok2 {
			fmt.Fprintf(w, " %s %.2f×;", shortName(t.name), ratio(b.RPS, a.RPS))
		}
	}
	fmt.Fprintln(w)
	r := rep.BrokerRSS
	fmt.Fprintf(w, "Broker RSS: idle %.1f MiB; peak (VmHWM) while signing %.1f MiB, while saving %.1f MiB", float64(r.Idle)/mib, float64(r.Signing)/mib, float64(r.Saving)/mib)
	for _, o := range rep.ServerRSS {
		fmt.Fprintf(w, "; %s peak %.1f MiB", o.Name, float64(o.Peak)/mib)
	}
	fmt.Fprintln(w)
	if r.Note != "" {
		fmt.Fprintln(w, "  ("+r.Note+")")
	}

	fmt.Fprintln(w, "\nTargets (the lowest ratio over the sweep counts):")
	if minCeil >= 0 {
		verdict(w, "signing ≥ 70% of the ceiling", fmt.Sprintf("%.0f%%", 100*minCeil), minCeil >= 0.70)
		verdict(w, "signing ≥ 4× the guide's server", fmt.Sprintf("%.1f×", minHono), minHono >= 4)
	}
	if minSave >= 0 {
		verdict(w, "saving ≥ 70% of raw INSERTs", fmt.Sprintf("%.0f%%", 100*minSave), minSave >= 0.70)
	}
	verdict(w, "broker RSS under load < 64 MiB", fmt.Sprintf("%.1f MiB", float64(r.Peak)/mib), r.Peak < 64*mib)
	fmt.Fprintf(w, "Whole run: %.0fs; load average at start %s, at end %s.\n", rep.ElapsedSecs, rep.Machine.LoadAvg, loadAvg())
}

func verdict(w io.Writer, what, got string, ok bool) {
	v := "MET"
	if !ok {
		v = "MISSED"
	}
	fmt.Fprintf(w, "  %-34s %-10s %s\n", what, got, v)
}

func minOf(cur, v float64) float64 {
	if cur < 0 || v < cur {
		return v
	}
	return cur
}

func msf(d time.Duration) float64 { return float64(d) / 1e6 }

func shortName(t string) string {
	switch t {
	case tBrokerSign:
		return "broker signing"
	case tBrokerSave:
		return "broker saving"
	case tHono:
		return "Hono"
	}
	return t
}

// cpuTimes is the machine's CPU time counters from /proc/stat.
type cpuTimes struct{ busy, total int64 }

func machineTimes() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	var t cpuTimes
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is counted in user already
			break
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

func (t cpuTimes) busySince(t0 cpuTimes) float64 {
	return ratio(float64(t.busy-t0.busy), float64(t.total-t0.total))
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
