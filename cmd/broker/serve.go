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
	logger := newLogger(stdout, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	app, err := buildApp(ctx, cfg, logger, nil)
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
	svc := newService(cfg, store)
	e := httpapi.New(httpapi.Deps{Service: svc, Auth: verifier, Logger: logger, Mount: mount, UploadMaxBytes: cfg.UploadMaxBytes})
	return &app{store: store, handler: e}, nil
}

// providerHTTPClient is shared by the provider clients; the timeout keeps a
// hung provider from holding requests (and goroutines) forever.
var providerHTTPClient = &http.Client{Timeout: 15 * time.Second}

func newService(cfg *config.Config, store metadata.Store) *metadata.Service {
	svc := &metadata.Service{Store: store}
	if c := cfg.Cloudinary; c.Enabled() {
		alg := signer.Algorithm(c.SignatureAlgorithm)
		client := &cloudinary.Client{
			CloudName: c.CloudName, APIKey: c.APIKey, APISecret: c.APISecret,
			UploadPrefix: c.UploadPrefix, DeliveryURL: c.DeliveryURL,
			Algorithm: alg, HTTP: providerHTTPClient,
		}
		notify := ""
		if cfg.PublicURL != "" {
			notify = cfg.PublicURL + "/webhooks/cloudinary"
		}
		svc.Cloudinary = metadata.NewCloudinary(metadata.CloudinarySettings{
			CloudName: c.CloudName, APIKey: c.APIKey, APISecret: c.APISecret,
			UploadPrefix: c.UploadPrefix, Folder: c.Folder, Algorithm: alg,
			TTL: cfg.SignatureTTL, NotificationURL: notify,
		}, client)
	}
	if u := cfg.Uploadcare; u.Enabled() {
		client := &uploadcare.Client{
			PublicKey: u.PublicKey, SecretKey: u.SecretKey,
			// HTTP nil: the client's own defaults bound REST calls to 10 s
			// but leave a streaming upload as long as it needs.
			UploadURL: u.UploadURL, APIURL: u.APIURL, CDNURL: u.CDNURL,
		}
		svc.Uploadcare = metadata.NewUploadcare(metadata.UploadcareSettings{
			PublicKey: u.PublicKey, SecretKey: u.SecretKey, UploadURL: u.UploadURL, TTL: cfg.SignatureTTL,
		}, client)
	}
	return svc
}
