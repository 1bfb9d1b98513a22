package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/httpapi"
	"github.com/brokerdev/broker/metadata"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
	"github.com/brokerdev/broker/web"
)

func serve(stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	for _, require := range []func() error{cfg.RequireDatabase, cfg.RequireProvider, cfg.RequireAuth} {
		if err := require(); err != nil {
			return err
		}
	}
	if cfg.Addr == "" {
		cfg.Addr = ":3000"
	}
	logs := newLogBuffer(stdout, 50*time.Millisecond)
	defer logs.Close()
	logger := newLogger(logs, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; a second one, with the
	// default handling restored, ends the process at once.
	context.AfterFunc(ctx, stop)

	// The demo page is served in production too (the contract's GET /): it
	// holds no token of its own, the user pastes one.
	app, err := buildApp(ctx, cfg, logger, func(e *echo.Echo) { web.Register(e, web.Options{}) })
	if err != nil {
		return err
	}
	defer app.store.Close()
	return listenAndServe(ctx, cfg.Addr, app.handler, logger, func(addr string) {
		logger.Info("broker listening", "addr", addr, "version", version())
	})
}

// app is the wired broker.
type app struct {
	store   metadata.Store
	handler http.Handler
}

// buildApp migrates (unless AUTO_MIGRATE=false), opens the store and wires
// the HTTP layer. mount adds routes beside the API (dev mode's emulator and
// demo page).
func buildApp(ctx context.Context, cfg *config.Config, logger *slog.Logger, mount func(*echo.Echo)) (*app, error) {
	if cfg.AutoMigrate {
		if err := db.Migrate(ctx, cfg.DatabaseURL); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	store, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	verifier, err := auth.New(ctx, cfg.Auth)
	if err != nil {
		store.Close()
		return nil, err
	}
	metrics := httpapi.NewMetrics()
	if p, ok := store.(*db.Postgres); ok {
		metrics.WatchPool(p.Pool())
		warnIfBypassesRLS(ctx, p, logger)
	}
	svc := newService(cfg, store, metrics)
	e := httpapi.New(httpapi.Deps{
		Service: svc, Auth: verifier, Logger: logger, Mount: mount, UploadMaxBytes: cfg.UploadMaxBytes,
		CORSOrigins: cfg.CORSOrigins, RateLimitPerMinute: cfg.RateLimitPerMinute, Metrics: metrics,
	})
	return &app{store: store, handler: e}, nil
}

// warnIfBypassesRLS logs a warning when the database role is exempt from
// row-level security: the broker works, but the policies that keep a
// faulty query to one user's rows are not applied (docs/neon.md).
func warnIfBypassesRLS(ctx context.Context, p *db.Postgres, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bypass, err := p.BypassesRLS(ctx)
	switch {
	case err != nil:
		logger.Warn("could not check whether the database role bypasses row-level security", "error", err)
	case bypass:
		logger.Warn("the database role bypasses row-level security (it is a superuser or has BYPASSRLS), "+
			"so the policies on files are not applied; connect as a role without BYPASSRLS (docs/neon.md)",
			"see", "docs/neon.md")
	}
}

// Provider call limits. Cloudinary's calls (Admin API lookup, destroy) are
// small JSON exchanges. Uploadcare's REST calls are too, but its /base/
// upload streams a whole file and may take minutes: it gets no overall
// limit, only a bound on the wait for the answer once the file is sent.
const (
	cloudinaryCallTimeout     = 15 * time.Second
	uploadcareRESTTimeout     = 10 * time.Second
	uploadcareAnswerTimeout   = 2 * time.Minute
	providerIdleConnsPerHost  = 16
	providerIdleConnTimeout   = 90 * time.Second
	providerTLSHandshakeLimit = 10 * time.Second
)

// providerTransport is a transport of its own for one provider, timed
// into the provider latency metrics.
func providerTransport(m *httpapi.Metrics, provider string, answerTimeout time.Duration) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = providerIdleConnsPerHost
	t.IdleConnTimeout = providerIdleConnTimeout
	t.TLSHandshakeTimeout = providerTLSHandshakeLimit
	t.ResponseHeaderTimeout = answerTimeout
	return m.InstrumentProvider(provider, t)
}

// bodylessTimeout bounds the requests without a body (Uploadcare's REST
// calls) as an http.Client Timeout would, and leaves the streamed uploads,
// which have one, to the caller's context.
type bodylessTimeout struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (t bodylessTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose ends a request's context once its answer has been read.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// newService wires the use cases to the providers' clients; m times their
// calls (nil: a registry nobody reads).
func newService(cfg *config.Config, store metadata.Store, m *httpapi.Metrics) *metadata.Service {
	if m == nil {
		m = httpapi.NewMetrics()
	}
	svc := &metadata.Service{Store: store}
	if c := cfg.Cloudinary; c.Enabled() {
		alg := signer.Algorithm(c.SignatureAlgorithm)
		client := &cloudinary.Client{
			CloudName: c.CloudName, APIKey: c.APIKey, APISecret: c.APISecret,
			UploadPrefix: c.UploadPrefix, DeliveryURL: c.DeliveryURL,
			Algorithm: alg,
			HTTP: &http.Client{
				Timeout:   cloudinaryCallTimeout,
				Transport: providerTransport(m, metadata.ProviderCloudinary, cloudinaryCallTimeout),
			},
		}
		notify := ""
		if cfg.PublicURL != "" {
			notify = cfg.PublicURL + "/webhooks/cloudinary"
		}
		svc.Cloudinary = metadata.NewCloudinary(metadata.CloudinarySettings{
			CloudName: c.CloudName, APIKey: c.APIKey, APISecret: c.APISecret,
			UploadPrefix: c.UploadPrefix, Folder: c.Folder, Algorithm: alg,
			TTL: cfg.SignatureTTL, NotificationURL: notify, WebhookMaxAge: c.WebhookMaxAge,
		}, client)
	}
	if u := cfg.Uploadcare; u.Enabled() {
		client := &uploadcare.Client{
			PublicKey: u.PublicKey, SecretKey: u.SecretKey,
			// No Timeout: it would bound the streamed uploads too. The
			// transport bounds REST calls as the client's own default would.
			HTTP: &http.Client{Transport: bodylessTimeout{
				base:    providerTransport(m, metadata.ProviderUploadcare, uploadcareAnswerTimeout),
				timeout: uploadcareRESTTimeout,
			}},
			UploadURL: u.UploadURL, APIURL: u.APIURL, CDNURL: u.CDNURL,
		}
		svc.Uploadcare = metadata.NewUploadcare(metadata.UploadcareSettings{
			PublicKey: u.PublicKey, SecretKey: u.SecretKey, UploadURL: u.UploadURL, TTL: cfg.SignatureTTL,
			WebhookSecret: u.WebhookSecret,
		}, client)
	}
	return svc
}
