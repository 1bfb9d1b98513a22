// Package config loads the broker's settings from the environment (and a
// .env file), with the contract's variable names, defaults and validation.
// Every problem is reported as one line naming the variable.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Config is every setting of every command. Commands check what they need
// with the Require* methods.
type Config struct {
	Addr               string        `envconfig:"ADDR"`
	DatabaseURL        string        `envconfig:"DATABASE_URL"`
	AutoMigrate        bool          `envconfig:"AUTO_MIGRATE" default:"true"`
	PublicURL          string        `envconfig:"PUBLIC_URL"`
	SignatureTTL       time.Duration `envconfig:"SIGNATURE_TTL" default:"30m"`
	UploadMaxBytes     int64         `envconfig:"UPLOAD_MAX_BYTES" default:"104857600"`
	CORSOrigins        []string      `envconfig:"CORS_ORIGINS"`
	RateLimitPerMinute int           `envconfig:"RATE_LIMIT_PER_MINUTE" default:"300"`
	LogLevel           string        `envconfig:"LOG_LEVEL" default:"info"`

	Cloudinary Cloudinary `envconfig:"CLOUDINARY"`
	Uploadcare Uploadcare `envconfig:"UPLOADCARE"`
	Auth       Auth       `envconfig:"AUTH"`
}

// Cloudinary is the account the broker signs for.
type Cloudinary struct {
	URL                string `envconfig:"URL"`
	CloudName          string `envconfig:"CLOUD_NAME"`
	APIKey             string `envconfig:"API_KEY"`
	APISecret          string `envconfig:"API_SECRET"`
	UploadPrefix       string `envconfig:"UPLOAD_PREFIX" default:"https://api.cloudinary.com"`
	DeliveryURL        string `envconfig:"DELIVERY_URL" default:"https://res.cloudinary.com"`
	Folder             string `envconfig:"FOLDER" default:"uploads"`
	SignatureAlgorithm string `envconfig:"SIGNATURE_ALGORITHM" default:"sha1"`
	// WebhookMaxAge is how old an X-Cld-Timestamp may be (the SDKs' 2 h).
	WebhookMaxAge time.Duration `envconfig:"WEBHOOK_MAX_AGE" default:"2h"`
}

// Enabled reports whether the account is configured.
func (c Cloudinary) Enabled() bool { return c.CloudName != "" }

// Uploadcare is the project the broker signs for.
type Uploadcare struct {
	PublicKey     string `envconfig:"PUBLIC_KEY"`
	SecretKey     string `envconfig:"SECRET_KEY"`
	UploadURL     string `envconfig:"UPLOAD_URL" default:"https://upload.uploadcare.com"`
	APIURL        string `envconfig:"API_URL" default:"https://api.uploadcare.com"`
	CDNURL        string `envconfig:"CDN_URL"`
	WebhookSecret string `envconfig:"WEBHOOK_SECRET"`
}

// Enabled reports whether the project is configured.
func (u Uploadcare) Enabled() bool { return u.PublicKey != "" }

// Auth says how user tokens are verified.
type Auth struct {
	JWTSecret    string `envconfig:"JWT_SECRET"`
	JWTPublicKey string `envconfig:"JWT_PUBLIC_KEY"`
	JWKSURL      string `envconfig:"JWKS_URL"`
	// JWTAlgorithms pins the accepted algorithms (comma-separated). Empty
	// means the one the key implies: HS256 for a secret, RS256/ES256/EdDSA
	// for a PEM key by its type, RS256, ES256 and EdDSA for a JWKS.
	JWTAlgorithms []string `envconfig:"JWT_ALGORITHMS"`
	Issuer        string   `envconfig:"ISSUER"`
	Audience      string   `envconfig:"AUDIENCE"`
	UserClaim     string   `envconfig:"USER_CLAIM" default:"sub"`
}

// Error is a configuration problem: the variable and what is wrong with it.
type Error struct {
	Var     string
	Problem string
}

func (e *Error) Error() string { return e.Var + ": " + e.Problem }

func problem(name, format string, args ...any) error {
	return &Error{Var: name, Problem: fmt.Sprintf(format, args...)}
}

// Load reads .env from the working directory (the real environment wins),
// then the environment, and validates the result.
func Load() (*Config, error) {
	if err := LoadDotEnv(".env"); err != nil {
		return nil, err
	}
	return FromEnv()
}

// FromEnv reads and validates the environment only.
func FromEnv() (*Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return nil, problem(pe.KeyName, "cannot read %q as %s", pe.Value, pe.TypeName)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}

var folderPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`)

func (c *Config) normalize() error {
	if err := c.Cloudinary.normalize(); err != nil {
		return err
	}
	if err := c.Uploadcare.normalize(); err != nil {
		return err
	}
	if err := c.Auth.normalize(); err != nil {
		return err
	}
	if c.DatabaseURL != "" {
		if _, _, err := ParseDatabaseURL(c.DatabaseURL); err != nil {
			return err
		}
	}
	if c.PublicURL != "" {
		if err := checkBaseURL("PUBLIC_URL", c.PublicURL); err != nil {
			return err
		}
		c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	}
	if c.SignatureTTL <= 0 || c.SignatureTTL > time.Hour {
		return problem("SIGNATURE_TTL", "must be more than 0 and at most 1h (Cloudinary accepts a timestamp for one hour), got %s", c.SignatureTTL)
	}
	if c.UploadMaxBytes <= 0 {
		return problem("UPLOAD_MAX_BYTES", "must be a positive number of bytes")
	}
	if c.RateLimitPerMinute < 0 {
		return problem("RATE_LIMIT_PER_MINUTE", "must be 0 (off) or more")
	}
	for i, o := range c.CORSOrigins {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o != "*" {
			if err := checkBaseURL("CORS_ORIGINS", o); err != nil {
				return err
			}
		}
		c.CORSOrigins[i] = o
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return problem("LOG_LEVEL", "must be debug, info, warn or error")
	}
	return nil
}

func (c *Cloudinary) normalize() error {
	if c.URL != "" {
		if err := c.applyURL(); err != nil {
			return err
		}
	}
	set := 0
	for _, v := range []string{c.CloudName, c.APIKey, c.APISecret} {
		if v != "" {
			set++
		}
	}
	if set > 0 && set < 3 {
		for _, f := range []struct{ name, value string }{
			{"CLOUDINARY_CLOUD_NAME", c.CloudName}, {"CLOUDINARY_API_KEY", c.APIKey}, {"CLOUDINARY_API_SECRET", c.APISecret},
		} {
			if f.value == "" {
				return problem(f.name, "is required when the other Cloudinary credentials are set")
			}
		}
	}
	if err := checkBaseURL("CLOUDINARY_UPLOAD_PREFIX", c.UploadPrefix); err != nil {
		return err
	}
	if err := checkBaseURL("CLOUDINARY_DELIVERY_URL", c.DeliveryURL); err != nil {
		return err
	}
	c.UploadPrefix = strings.TrimRight(c.UploadPrefix, "/")
	c.DeliveryURL = strings.TrimRight(c.DeliveryURL, "/")
	if len(c.Folder) > 64 || !folderPattern.MatchString(c.Folder) {
		return problem("CLOUDINARY_FOLDER", "must be 1 to 64 characters of letters, digits, '_', '-' and '/' between names")
	}
	c.SignatureAlgorithm = strings.ToLower(c.SignatureAlgorithm)
	if c.SignatureAlgorithm != "sha1" && c.SignatureAlgorithm != "sha256" {
		return problem("CLOUDINARY_SIGNATURE_ALGORITHM", "must be sha1 or sha256, got %q", c.SignatureAlgorithm)
	}
	if c.WebhookMaxAge <= 0 {
		return problem("CLOUDINARY_WEBHOOK_MAX_AGE", "must be a positive duration")
	}
	return nil
}

// applyURL fills the credentials from cloudinary://KEY:SECRET@CLOUD[?upload_prefix=…].
// Separate variables that are set too must agree with it.
func (c *Cloudinary) applyURL() error {
	const name = "CLOUDINARY_URL"
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "cloudinary" || u.User == nil || u.Host == "" {
		return problem(name, "must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME")
	}
	key := u.User.Username()
	secret, hasSecret := u.User.Password()
	if key == "" || !hasSecret || secret == "" {
		return problem(name, "must carry both the API key and the API secret (cloudinary://API_KEY:API_SECRET@CLOUD_NAME)")
	}
	for _, f := range []struct {
		name, fromURL string
		field         *string
	}{
		{"CLOUDINARY_CLOUD_NAME", u.Host, &c.CloudName},
		{"CLOUDINARY_API_KEY", key, &c.APIKey},
		{"CLOUDINARY_API_SECRET", secret, &c.APISecret},
	} {
		if *f.field != "" && *f.field != f.fromURL {
			return problem(f.name, "disagrees with CLOUDINARY_URL; set one or the other")
		}
		*f.field = f.fromURL
	}
	if p := u.Query().Get("upload_prefix"); p != "" {
		c.UploadPrefix = p
	}
	return nil
}

func (u *Uploadcare) normalize() error {
	if (u.PublicKey == "") != (u.SecretKey == "") {
		if u.PublicKey == "" {
			return problem("UPLOADCARE_PUBLIC_KEY", "is required when UPLOADCARE_SECRET_KEY is set")
		}
		return problem("UPLOADCARE_SECRET_KEY", "is required when UPLOADCARE_PUBLIC_KEY is set")
	}
	for _, f := range []struct {
		name  string
		value *string
	}{{"UPLOADCARE_UPLOAD_URL", &u.UploadURL}, {"UPLOADCARE_API_URL", &u.APIURL}, {"UPLOADCARE_CDN_URL", &u.CDNURL}} {
		if *f.value == "" {
			continue
		}
		if err := checkBaseURL(f.name, *f.value); err != nil {
			return err
		}
		*f.value = strings.TrimRight(*f.value, "/")
	}
	if len(u.WebhookSecret) > 32 {
		return problem("UPLOADCARE_WEBHOOK_SECRET", "must be at most 32 characters (Uploadcare's limit)")
	}
	return nil
}

var knownAlgorithms = map[string]bool{
	"HS256": true, "HS384": true, "HS512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

func (a *Auth) normalize() error {
	set := 0
	for _, v := range []string{a.JWTSecret, a.JWTPublicKey, a.JWKSURL} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return problem("AUTH_JWT_SECRET", "set only one of AUTH_JWT_SECRET, AUTH_JWT_PUBLIC_KEY and AUTH_JWKS_URL")
	}
	if a.JWTSecret != "" && len(a.JWTSecret) < 32 {
		return problem("AUTH_JWT_SECRET", "must be at least 32 bytes for HS256")
	}
	if a.JWKSURL != "" {
		if err := checkBaseURL("AUTH_JWKS_URL", a.JWKSURL); err != nil {
			return err
		}
	}
	for i, alg := range a.JWTAlgorithms {
		alg = strings.TrimSpace(alg)
		if !knownAlgorithms[alg] {
			return problem("AUTH_JWT_ALGORITHMS", "unknown algorithm %q", alg)
		}
		if (a.JWTSecret != "") != strings.HasPrefix(alg, "HS") {
			return problem("AUTH_JWT_ALGORITHMS", "%s does not fit the configured key (HS* go with AUTH_JWT_SECRET only)", alg)
		}
		a.JWTAlgorithms[i] = alg
	}
	if strings.TrimSpace(a.UserClaim) == "" {
		return problem("AUTH_USER_CLAIM", "must name a claim")
	}
	return nil
}

// Configured reports whether any way of verifying tokens is set.
func (a Auth) Configured() bool {
	return a.JWTSecret != "" || a.JWTPublicKey != "" || a.JWKSURL != ""
}

func checkBaseURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return problem(name, "must be an http(s) URL, got %q", raw)
	}
	return nil
}

// Database kinds selected by DATABASE_URL.
const (
	DatabasePostgres = "postgres"
	DatabaseSQLite   = "sqlite"
)

// ParseDatabaseURL tells which store DATABASE_URL selects and returns what
// that store connects with: the URL itself for PostgreSQL, the file path for
// SQLite.
func ParseDatabaseURL(raw string) (kind, target string, err error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", problem("DATABASE_URL", "is not a valid URL")
		}
		return DatabasePostgres, raw, nil
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//")
		if path == "" {
			return "", "", problem("DATABASE_URL", "sqlite: needs a file path, as in sqlite:.broker/dev.db")
		}
		return DatabaseSQLite, path, nil
	default:
		return "", "", problem("DATABASE_URL", "must start with postgres://, postgresql:// or sqlite:")
	}
}

// RequireDatabase checks that DATABASE_URL is set.
func (c *Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return problem("DATABASE_URL", "is required (postgres://… or sqlite:PATH)")
	}
	return nil
}

// RequireProvider checks that at least one provider is configured.
func (c *Config) RequireProvider() error {
	if !c.Cloudinary.Enabled() && !c.Uploadcare.Enabled() {
		return problem("CLOUDINARY_URL", "no provider is configured: set CLOUDINARY_URL (or CLOUDINARY_CLOUD_NAME, _API_KEY, _API_SECRET) or UPLOADCARE_PUBLIC_KEY and UPLOADCARE_SECRET_KEY")
	}
	return nil
}

// RequireAuth checks that tokens can be verified.
func (c *Config) RequireAuth() error {
	if !c.Auth.Configured() {
		return problem("AUTH_JWT_SECRET", "is required (or AUTH_JWT_PUBLIC_KEY, or AUTH_JWKS_URL)")
	}
	return nil
}
