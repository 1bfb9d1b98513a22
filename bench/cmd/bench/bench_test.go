package main

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestParseMicro(t *testing.T) {
	out := `goos: linux
pkg: github.com/brokerdev/broker/signer
BenchmarkCloudinaryStringToSign-2         	  212282	       549.6 ns/op	     640 B/op	       6 allocs/op
BenchmarkSignCloudinaryNotification-2     	   97036	      1162 ns/op	 503.23 MB/s	    1560 B/op	       8 allocs/op
pkg: github.com/brokerdev/broker/auth
BenchmarkVerify/HS256-2      	   22539	      5325 ns/op	    3184 B/op	      52 allocs/op
BenchmarkNoMem 	   100	      7 ns/op
PASS
`
	got := parseMicro(strings.NewReader(out))
	want := []microResult{
		{"signer", "CloudinaryStringToSign", 549.6, 640, 6},
		{"signer", "SignCloudinaryNotification", 1162, 1560, 8},
		{"auth", "Verify/HS256", 5325, 3184, 52},
		{"auth", "NoMem", 7, 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestWithDatabase(t *testing.T) {
	u, err := withDatabase("postgres://admin:pw@db.example:5433/postgres?sslmode=disable", "broker_bench_1", "broker_bench", "s3cret", 4)
	if err != nil {
		t.Fatal(err)
	}
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := p.User.Password()
	if p.Host != "db.example:5433" || p.Path != "/broker_bench_1" || p.User.Username() != "broker_bench" || pw != "s3cret" ||
		p.Query().Get("sslmode") != "disable" || p.Query().Get("pool_max_conns") != "4" {
		t.Fatalf("wrong URL %s", u)
	}
	plain, _ := withDatabase("postgres://admin@h/postgres", "d", "", "", 0)
	if plain != "postgres://admin@h/d" {
		t.Fatalf("without a pool: %s", plain)
	}
	if _, err := withDatabase("host=h dbname=x", "d", "", "", 0); err == nil {
		t.Fatal("a key=value DSN was taken for a URL")
	}
}

func TestProcReadings(t *testing.T) {
	pid := os.Getpid()
	hwm, err := vmHWM(pid)
	if err != nil || hwm <= 0 {
		t.Fatalf("VmHWM = %d, %v", hwm, err)
	}
	rss, err := vmRSS(pid)
	if err != nil || rss <= 0 {
		t.Fatalf("VmRSS = %d, %v", rss, err)
	}
	if _, err := cpuTime(pid); err != nil {
		t.Fatal(err)
	}
}
