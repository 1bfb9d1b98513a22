package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/db"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/signer"
)

func migrate(stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	if err := db.Migrate(context.Background(), cfg.DatabaseURL); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func emulate(stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if err := cfg.RequireProvider(); err != nil {
		return err
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:3100"
	}
	logger := newLogger(stdout, cfg.LogLevel)
	emu, err := emulator.New(emulatorOptions(cfg))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return listenAndServe(ctx, cfg.Addr, emu.Handler(), logger, func(addr string) {
		// The URLs to give the broker (CLOUDINARY_UPLOAD_PREFIX,
		// UPLOADCARE_UPLOAD_URL, …) for each emulated provider.
		base := "http://" + addr
		attrs := []any{"addr", addr}
		if cfg.Cloudinary.Enabled() {
			attrs = append(attrs, "cloudinary_upload_prefix", base+"/cloudinary")
		}
		if cfg.Uploadcare.Enabled() {
			attrs = append(attrs, "uploadcare_upload_url", base+"/uploadcare/upload",
				"uploadcare_api_url", base+"/uploadcare/api", "uploadcare_cdn_url", base+"/uploadcare/cdn")
		}
		logger.Info("emulator listening", attrs...)
	})
}

// emulatorOptions describes the account the emulator plays, from the same
// variables the broker reads.
func emulatorOptions(cfg *config.Config) emulator.Options {
	var opts emulator.Options
	if c := cfg.Cloudinary; c.Enabled() {
		opts.Cloudinary = &emulator.CloudinaryAccount{
			CloudName: c.CloudName, APIKey: c.APIKey, APISecret: c.APISecret,
			Algorithm: signer.Algorithm(c.SignatureAlgorithm),
		}
		// The real delivery host is no use offline; anything else names
		// where the emulator is reached.
		if c.DeliveryURL != "https://res.cloudinary.com" {
			opts.CloudinaryDeliveryURL = c.DeliveryURL
		}
	}
	if u := cfg.Uploadcare; u.Enabled() {
		// Signed uploads on: the broker always signs, and a project that
		// accepted unsigned uploads would let tests pass that must fail.
		opts.Uploadcare = &emulator.UploadcareProject{
			PublicKey: u.PublicKey, SecretKey: u.SecretKey, SignedUploads: true,
			WebhookSecret: u.WebhookSecret,
		}
		// Uploadcare keeps webhook subscriptions in the project; the
		// emulator's one subscription is the broker's own endpoint, known
		// once PUBLIC_URL says where the broker is.
		if cfg.PublicURL != "" {
			opts.Uploadcare.WebhookTargets = []string{cfg.PublicURL + "/webhooks/uploadcare"}
		}
		// An empty UPLOADCARE_CDN_URL means the project's ucarecd.net host,
		// no use offline; a set one names where the emulator is reached.
		opts.UploadcareCDNURL = u.CDNURL
	}
	return opts
}

func token(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sub := fs.String("sub", "", "user id to put in the token")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return &usageError{msg: err.Error() + " (usage: broker token --sub USER [--ttl 1h])"}
	}
	if *sub == "" {
		return &usageError{msg: "--sub is required (usage: broker token --sub USER [--ttl 1h])"}
	}
	if *ttl <= 0 {
		return &usageError{msg: "--ttl must be positive"}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.Auth.JWTSecret == "" {
		return &config.Error{Var: "AUTH_JWT_SECRET", Problem: "is required to sign tokens (broker token makes HS256 tokens)"}
	}
	tok, err := auth.IssueHS256([]byte(cfg.Auth.JWTSecret), cfg.Auth.UserClaim, *sub, *ttl, cfg.Auth.Issuer, cfg.Auth.Audience)
	if err != nil {
		return fmt.Errorf("sign token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
