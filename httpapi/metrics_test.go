package httpapi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/internal/testdb"
)

// scrape fetches /metrics and parses it with Prometheus' own parser, so
// anything a scraper would reject fails here.
func scrape(t *testing.T, baseURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics Content-Type %q, want the Prometheus text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	return families
}

// sample finds the series of family name whose labels include want.
func sample(families map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a counter's or gauge's value, or -1 when the series is missing.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := sample(families, name, labels)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

func TestMetrics(t *testing.T) {
	o := newOpsServer(t, nil)
	for range 2 {
		if r := o.get("/generate-signature", "alice"); r.Status != 200 {
			t.Fatalf("generate-signature: %d", r.Status)
		}
	}
	o.get("/generate-signature?provider=uploadcare", "alice") // 400: not configured
	o.save("alice", badEvidence)                              // 422: refused
	o.save("alice", `{"public_id":`)                          // 400: refused
	o.request("POST", "/save-metadata", "", strings.NewReader("{}"), nil)
	o.get("/no/such/path", "")

	f := scrape(t, o.URL)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"broker_http_requests_total", map[string]string{"method": "GET", "route": "/generate-signature", "status": "200"}, 2},
		{"broker_http_requests_total", map[string]string{"method": "GET", "route": "/generate-signature", "status": "400"}, 1},
		{"broker_http_requests_total", map[string]string{"method": "POST", "route": "/save-metadata", "status": "422"}, 1},
		{"broker_http_requests_total", map[string]string{"method": "GET", "route": "unmatched", "status": "404"}, 1},
		{"broker_signatures_issued_total", map[string]string{"provider": "cloudinary"}, 2},
		{"broker_saves_total", map[string]string{"route": "/save-metadata", "outcome": "refused"}, 2},
		// This scrape is in flight while the registry is read.
		{"broker_http_requests_in_flight", nil, 1},
	} {
		if got := value(f, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if m := sample(f, "broker_signatures_issued_total", map[string]string{"provider": "uploadcare"}); m != nil && m.Counter.GetValue() != 0 {
		t.Errorf("a refused signature was counted as issued")
	}
	// 401 never reached the save.
	if m := sample(f, "broker_saves_total", map[string]string{"outcome": "failed"}); m != nil {
		t.Errorf("a save was counted as failed: %v", m)
	}
	h := sample(f, "broker_http_request_duration_seconds", map[string]string{"route": "/generate-signature", "status": "200"})
	if h == nil || h.Histogram == nil || h.Histogram.GetSampleCount() != 2 || len(h.Histogram.GetBucket()) == 0 {
		t.Errorf("latency histogram of /generate-signature: %v", h)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if f[name] == nil {
			t.Errorf("%s is missing: the runtime collectors are not registered", name)
		}
	}
	// Paths are not labels: the made-up path appears nowhere.
	resp, err := http.Get(o.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(text), "/no/such/path") {
		t.Errorf("a request path became a label value")
	}
}

func TestProviderCallMetrics(t *testing.T) {
	m := httpapi.NewMetrics()
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	defer provider.Close()
	client := &http.Client{Transport: m.InstrumentProvider("uploadcare", nil)}
	for _, method := range []string{"GET", "GET", "DELETE"} {
		req, _ := http.NewRequest(method, provider.URL+"/files/x/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A provider that cannot be reached.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()
	if _, err := client.Get(deadURL); err == nil {
		t.Fatal("a closed port answered")
	}

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	f := scrape(t, srv.URL)
	for _, tc := range []struct {
		labels map[string]string
		want   uint64
	}{
		{map[string]string{"provider": "uploadcare", "method": "GET", "status": "200"}, 2},
		{map[string]string{"provider": "uploadcare", "method": "DELETE", "status": "404"}, 1},
		{map[string]string{"provider": "uploadcare", "method": "GET", "status": "error"}, 1},
	} {
		h := sample(f, "broker_provider_request_duration_seconds", tc.labels)
		if h == nil || h.Histogram.GetSampleCount() != tc.want {
			t.Errorf("provider latency %v: %v, want %d samples", tc.labels, h, tc.want)
		}
	}
}

func TestPoolMetrics(t *testing.T) {
	ctx := context.Background()
	store, err := db.OpenPostgres(ctx, testdb.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	m := httpapi.NewMetrics()
	m.WatchPool(store.Pool())
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	f := scrape(t, srv.URL)
	if got := value(f, "broker_db_pool_total_conns", nil); got < 1 {
		t.Errorf("broker_db_pool_total_conns = %v, want at least the connection the ping opened", got)
	}
	if got := value(f, "broker_db_pool_max_conns", nil); got < 1 {
		t.Errorf("broker_db_pool_max_conns = %v", got)
	}
	if got := value(f, "broker_db_pool_acquires_total", nil); got < 1 {
		t.Errorf("broker_db_pool_acquires_total = %v", got)
	}
	if f["broker_db_pool_acquired_conns"].GetType() != dto.MetricType_GAUGE || f["broker_db_pool_new_conns_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("pool series have the wrong types")
	}
}
