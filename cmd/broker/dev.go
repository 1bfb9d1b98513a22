package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/auth"
	"github.com/brokerdev/broker/config"
	"github.com/brokerdev/broker/emulator"
	"github.com/brokerdev/broker/web"
)

// Dev mode keeps all its state in one folder of the working directory, so
// deleting the folder is a full reset (docs/dev-mode.md).
const (
	devDir         = ".broker"
	devAddr        = "127.0.0.1:3000"
	devUser        = "dev-user"
	devTokenTTL    = 24 * time.Hour
	devCloudName   = "broker-dev"
	devEmulatorURL = "/emulator"
)

// dev runs the broker, the provider emulator and the demo page in one
// process on one listener: the whole flow offline, with no set-up.
func dev(stdout io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.Addr == "" {
		cfg.Addr = devAddr
	}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = "sqlite:" + filepath.Join(devDir, "dev.db")
	}
	creds, err := loadDevCredentials(filepath.Join(devDir, "credentials.json"))
	if err != nil {
		return err
	}
	creds.fill(cfg)
	logger := newLogger(stdout, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Listen first: every URL handed to clients points back at this
	// listener, and with ADDR=…:0 only the listener knows its port.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (set ADDR to use another address): %w", cfg.Addr, err)
	}
	defer ln.Close()
	base := cfg.PublicURL
	if base == "" {
		base = localURL(ln.Addr())
	}
	pointAtEmulator(cfg, base)

	// The emulator plays the same accounts at the URLs just set; its
	// webhooks go to PUBLIC_URL, this process. Stored assets live beside
	// the database so that both survive a restart together.
	emuOpts := emulatorOptions(cfg)
	emuOpts.Dir = filepath.Join(devDir, "emulator")
	emuOpts.Logger = logger
	emu, err := emulator.New(emuOpts)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	defer emu.Close()

	devToken := ""
	if cfg.Auth.JWTSecret != "" { // unset when AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL is
		devToken, err = auth.IssueHS256([]byte(cfg.Auth.JWTSecret), cfg.Auth.UserClaim, devUser, devTokenTTL, cfg.Auth.Issuer, cfg.Auth.Audience)
		if err != nil {
			return fmt.Errorf("sign the dev token: %w", err)
		}
	}
	app, err := buildApp(ctx, cfg, logger, func(e *echo.Echo) {
		e.Any(devEmulatorURL+"/*", echo.WrapHandler(http.StripPrefix(devEmulatorURL, emu.Handler())))
		web.Register(e, web.Options{DevToken: devToken})
	})
	if err != nil {
		return err
	}
	defer app.store.Close()

	printDevBanner(stdout, cfg, base, devToken)
	logger.Info("broker dev listening", "addr", ln.Addr().String(), "url", base+"/")
	return serveListener(ctx, ln, app.handler, logger)
}

// localURL is the URL of a listener on this machine; a wildcard address
// is reached through the loopback interface.
func localURL(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// pointAtEmulator sends every provider call, the client's upload included,
// to the emulator mounted under base, and makes signed Cloudinary uploads
// carry base's webhook as notification_url.
func pointAtEmulator(cfg *config.Config, base string) {
	emu := base + devEmulatorURL
	cfg.PublicURL = base
	cfg.Cloudinary.UploadPrefix = emu + "/cloudinary"
	cfg.Cloudinary.DeliveryURL = emu + "/cloudinary"
	cfg.Uploadcare.UploadURL = emu + "/uploadcare/upload"
	cfg.Uploadcare.APIURL = emu + "/uploadcare/api"
	cfg.Uploadcare.CDNURL = emu + "/uploadcare/cdn"
}

func printDevBanner(w io.Writer, cfg *config.Config, base, devToken string) {
	fmt.Fprintf(w, "\nbroker dev is up: nothing leaves this machine, state is kept in %s/\n\n", devDir)
	fmt.Fprintf(w, "  Demo page   %s/\n", base)
	fmt.Fprintf(w, "  Emulator    %s%s/ (Cloudinary cloud %q, Uploadcare key %s)\n", base, devEmulatorURL, cfg.Cloudinary.CloudName, cfg.Uploadcare.PublicKey)
	db := "DATABASE_URL from the environment"
	if strings.HasPrefix(cfg.DatabaseURL, "sqlite:") { // a Postgres URL may hold a password
		db = cfg.DatabaseURL
	}
	fmt.Fprintf(w, "  Database    %s\n", db)
	if devToken == "" {
		fmt.Fprintf(w, "\n  Tokens are checked with your AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL; bring your own.\n\n")
		return
	}
	fmt.Fprintf(w, "\nA token for %s, valid for %s:\n\n  export BROKER_TOKEN=%s\n\n", devUser, "24 h", devToken)
	fmt.Fprintf(w, "Try it:\n\n  curl -s -H \"Authorization: Bearer $BROKER_TOKEN\" '%s/generate-signature?provider=cloudinary'\n", base)
	fmt.Fprintf(w, "  curl -s -H \"Authorization: Bearer $BROKER_TOKEN\" %s/files\n", base)
	fmt.Fprintf(w, "  BROKER_URL=%s docs/examples/upload.sh photo.png   # sign, upload, save (curl + jq)\n\n", base)
}

// devCredentials are the generated accounts of dev mode, stored under the
// names of the variables that override them.
type devCredentials struct {
	CloudinaryCloudName     string `json:"CLOUDINARY_CLOUD_NAME"`
	CloudinaryAPIKey        string `json:"CLOUDINARY_API_KEY"`
	CloudinaryAPISecret     string `json:"CLOUDINARY_API_SECRET"`
	UploadcarePublicKey     string `json:"UPLOADCARE_PUBLIC_KEY"`
	UploadcareSecretKey     string `json:"UPLOADCARE_SECRET_KEY"`
	UploadcareWebhookSecret string `json:"UPLOADCARE_WEBHOOK_SECRET"`
	JWTSecret               string `json:"AUTH_JWT_SECRET"`
}

// loadDevCredentials reads path, generates whatever it lacks (all of it
// the first time) and writes the result back, readable by the owner only,
// so tokens and stored uploads stay valid across restarts.
func loadDevCredentials(path string) (devCredentials, error) {
	var c devCredentials
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return c, fmt.Errorf("read dev credentials: %w", err)
	default:
		if err := json.Unmarshal(data, &c); err != nil {
			return c, fmt.Errorf("read dev credentials: %s is not valid JSON (delete it to start afresh): %w", path, err)
		}
	}
	changed := false
	for _, f := range []struct {
		value    *string
		generate func() string
	}{
		{&c.CloudinaryCloudName, func() string { return devCloudName }},
		{&c.CloudinaryAPIKey, func() string { return randomDigits(15) }},
		{&c.CloudinaryAPISecret, func() string { return randomText(20) }},
		{&c.UploadcarePublicKey, func() string { return randomHex(10) }},
		{&c.UploadcareSecretKey, func() string { return randomHex(10) }},
		{&c.UploadcareWebhookSecret, func() string { return randomHex(16) }}, // 32 characters, Uploadcare's limit
		{&c.JWTSecret, func() string { return randomHex(32) }},
	} {
		if *f.value == "" {
			*f.value, changed = f.generate(), true
		}
	}
	if !changed {
		return c, nil
	}
	return c, writePrivateFile(path, c)
}

// fill gives cfg the stored credentials wherever the environment set none.
func (c devCredentials) fill(cfg *config.Config) {
	if !cfg.Cloudinary.Enabled() {
		cfg.Cloudinary.CloudName, cfg.Cloudinary.APIKey, cfg.Cloudinary.APISecret = c.CloudinaryCloudName, c.CloudinaryAPIKey, c.CloudinaryAPISecret
	}
	if !cfg.Uploadcare.Enabled() {
		cfg.Uploadcare.PublicKey, cfg.Uploadcare.SecretKey = c.UploadcarePublicKey, c.UploadcareSecretKey
	}
	if cfg.Uploadcare.WebhookSecret == "" {
		cfg.Uploadcare.WebhookSecret = c.UploadcareWebhookSecret
	}
	if a := cfg.Auth; a.JWTSecret == "" && a.JWTPublicKey == "" && a.JWKSURL == "" {
		cfg.Auth.JWTSecret = c.JWTSecret
	}
}

// writePrivateFile writes v as JSON to path with mode 0600 (the folder
// 0700), replacing the old file only once the new one is complete.
func writePrivateFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-credentials-*") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// randomText is n random bytes in URL-safe base64, the alphabet of
// Cloudinary's API secrets.
func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomDigits is an n-digit number without a leading zero, the shape of a
// Cloudinary API key.
func randomDigits(n int) string {
	low := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n-1)), nil)
	v, _ := rand.Int(rand.Reader, new(big.Int).Mul(low, big.NewInt(9)))
	return new(big.Int).Add(v, low).String()
}
