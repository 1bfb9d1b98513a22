package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the broker's Prometheus registry, served at /metrics.
//
// It is prometheus/client_golang rather than a hand-written exposition:
// the text format's escaping, histogram series and content negotiation
// (OpenMetrics) are easy to get subtly wrong and are what scrapers are
// strict about, and the library brings the Go runtime and process
// collectors that operators expect beside the broker's own series.
//
// Every label has a bounded set of values (route patterns, not paths;
// status codes; provider names), so the series count cannot grow with
// traffic.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inFlight    prometheus.Gauge
	signatures  *prometheus.CounterVec
	saves       *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	provider    *prometheus.HistogramVec
}

// NewMetrics builds a registry with the broker's series and the Go runtime
// and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "broker_http_request_duration_seconds",
			Help:    "Time from the request's headers to the end of its answer, by method, route pattern and status.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"method", "route", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "broker_http_requests_in_flight",
			Help: "Requests being handled now.",
		}),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_signatures_issued_total",
			Help: "Upload signatures issued, by provider.",
		}, []string{"provider"}),
		saves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_saves_total",
			Help: "Attempts to record an upload (POST /save-metadata, POST /upload) by route and outcome: created (201), repeat (200, already recorded for the same user), refused (a 4xx other than 401 and 429: bad evidence, another user's asset, malformed or too large), failed (5xx: provider or database unavailable, bug).",
		}, []string{"route", "outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "broker_rate_limited_total",
			Help: "Requests refused with 429 by the per-user rate limit, by action (sign, save).",
		}, []string{"action"}),
		provider: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "broker_provider_request_duration_seconds",
			Help:    "Time from sending a request to a provider's API to its answer's headers (for a streamed upload, the whole upload), by provider, method and status (\"error\" when no answer came).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"provider", "method", "status"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.inFlight, m.signatures, m.saves, m.rateLimited, m.provider,
	)
	return m
}

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry exposes the registry, for callers that add their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (s *server) metrics(c echo.Context) error {
	s.Metrics.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}

// started counts a request in flight until the returned func is called.
func (m *Metrics) started() func() {
	m.inFlight.Inc()
	return m.inFlight.Dec
}

// knownMethods keeps the method label bounded: a client can send any token
// as a method.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

func methodLabel(method string) string {
	if knownMethods[method] {
		return method
	}
	return "other"
}

// observeRequest records one answered request, and for the signing and
// saving routes what the answer means.
func (m *Metrics) observeRequest(s *server, c echo.Context, route string, status int, elapsed time.Duration) {
	method := methodLabel(c.Request().Method)
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.duration.WithLabelValues(method, route, code).Observe(elapsed.Seconds())

	switch route {
	case routeGenerateSignature:
		if status == http.StatusOK {
			// The handler chose the provider the same way; asking again
			// keeps the count out of the handler.
			if p, err := s.chooseProvider(c.QueryParam("provider")); err == nil {
				m.signatures.WithLabelValues(p).Inc()
			}
		}
	case routeSaveMetadata, routeUpload:
		if outcome := saveOutcome(status); outcome != "" {
			m.saves.WithLabelValues(route, outcome).Inc()
		}
	}
}

// saveOutcome sorts a save's status into the outcomes of
// broker_saves_total. 401 and 429 are left out: the request never reached
// the save (authentication and the rate limit have their own counts).
func saveOutcome(status int) string {
	switch {
	case status == http.StatusCreated:
		return "created"
	case status == http.StatusOK:
		return "repeat"
	case status == http.StatusUnauthorized, status == http.StatusTooManyRequests:
		return ""
	case status >= 400 && status < 500:
		return "refused"
	case status >= 500:
		return "failed"
	}
	return ""
}

// InstrumentProvider wraps a transport so that every call to the provider's
// API is timed into broker_provider_request_duration_seconds. base nil
// means http.DefaultTransport.
func (m *Metrics) InstrumentProvider(provider string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &providerTransport{base: base, observe: m.provider.MustCurryWith(prometheus.Labels{"provider": provider})}
}

type providerTransport struct {
	base    http.RoundTripper
	observe prometheus.ObserverVec
}

func (t *providerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	status := "error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	t.observe.WithLabelValues(methodLabel(req.Method), status).Observe(time.Since(start).Seconds())
	return resp, err
}

// PoolStater is what WatchPool reads; *pgxpool.Pool is one.
type PoolStater interface {
	Stat() *pgxpool.Stat
}

// WatchPool exposes the PostgreSQL connection pool's statistics, read at
// each scrape.
func (m *Metrics) WatchPool(pool PoolStater) {
	m.reg.MustRegister(&poolCollector{pool: pool})
}

// poolCollector turns pgxpool.Stat into broker_db_pool_* series.
type poolCollector struct {
	pool PoolStater
}

type poolMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*pgxpool.Stat) float64
}

func poolDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("broker_db_pool_"+name, help, nil, nil)
}

var poolMetrics = []poolMetric{
	{poolDesc("acquired_conns", "Connections in use by the broker now."), prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }},
	{poolDesc("idle_conns", "Open connections waiting to be used."), prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }},
	{poolDesc("constructing_conns", "Connections being opened now."), prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.ConstructingConns()) }},
	{poolDesc("total_conns", "Connections open or being opened."), prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }},
	{poolDesc("max_conns", "The pool's limit (pool_max_conns)."), prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }},
	{poolDesc("acquires_total", "Connections handed out."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }},
	{poolDesc("acquire_duration_seconds_total", "Time spent waiting for connections."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() }},
	{poolDesc("empty_acquires_total", "Acquires that had to wait for a connection to be opened or freed."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }},
	{poolDesc("canceled_acquires_total", "Acquires given up because the request's context ended."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) }},
	{poolDesc("new_conns_total", "Connections opened."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.NewConnsCount()) }},
	{poolDesc("max_lifetime_destroys_total", "Connections closed for reaching pool_max_conn_lifetime."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.MaxLifetimeDestroyCount()) }},
	{poolDesc("max_idle_destroys_total", "Connections closed for idling past pool_max_conn_idle_time."), prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.MaxIdleDestroyCount()) }},
}

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, pm := range poolMetrics {
		ch <- pm.desc
	}
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	stat := p.pool.Stat()
	for _, pm := range poolMetrics {
		ch <- prometheus.MustNewConstMetric(pm.desc, pm.kind, pm.value(stat))
	}
}
