// Package cloudinary is the broker's server-side client for Cloudinary: the
// Admin API lookup that proves an asset exists when a client's upload report
// carries no signature, the Upload API's destroy, and the delivery URL an
// asset must have. Signing is left to package signer; this package only
// speaks HTTP and sorts Cloudinary's answers into three outcomes callers can
// act on: success, ErrNotFound and ErrUnavailable.
package cloudinary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/brokerdev/broker/signer"
)

// Cloudinary's public endpoints, used when a Client leaves the base URLs empty.
const (
	DefaultUploadPrefix = "https://api.cloudinary.com"
	DefaultDeliveryURL  = "https://res.cloudinary.com"
)

var (
	// ErrNotFound means Cloudinary says the asset does not exist (or the
	// request named one that cannot exist, such as a malformed public ID).
	ErrNotFound = errors.New("cloudinary: asset not found")
	// ErrUnavailable is wrapped by every error where Cloudinary did not
	// answer or failed: network errors, timeouts, 5xx, rate limits (420,
	// 429), rejected credentials (401, 403) and answers that cannot be read.
	// Nothing was changed at the broker's side, so the caller may retry.
	ErrUnavailable = errors.New("cloudinary: provider unavailable")
)

// Client calls Cloudinary on behalf of one account. The zero values of
// UploadPrefix, DeliveryURL, Algorithm and HTTP mean Cloudinary's defaults.
type Client struct {
	CloudName, APIKey, APISecret string
	// UploadPrefix is the Upload/Admin API base, e.g. https://api.cloudinary.com
	// (or the emulator's); a trailing slash is tolerated.
	UploadPrefix string
	// DeliveryURL is the CDN base, e.g. https://res.cloudinary.com.
	DeliveryURL string
	// Algorithm signs destroy requests; it must match the account's setting.
	Algorithm signer.Algorithm
	// HTTP sends the requests; nil means a shared client with a 10 s timeout,
	// so a hanging provider can never hold a broker request forever.
	HTTP *http.Client
}

// Resource is what Cloudinary reports about one asset. The JSON names are
// those of the Admin API and of the upload response; unknown fields are
// ignored and missing ones stay zero, since Cloudinary adds fields over time.
type Resource struct {
	AssetID          string    `json:"asset_id"`
	PublicID         string    `json:"public_id"`
	Version          int64     `json:"version"`
	Format           string    `json:"format"`
	ResourceType     string    `json:"resource_type"`
	Type             string    `json:"type"`
	Bytes            int64     `json:"bytes"`
	Width            int       `json:"width"`
	Height           int       `json:"height"`
	URL              string    `json:"url"`
	SecureURL        string    `json:"secure_url"`
	CreatedAt        time.Time `json:"created_at"`
	OriginalFilename string    `json:"original_filename"`
}

// defaultHTTP is shared so that clients built without an http.Client still
// reuse connections to Cloudinary.
var defaultHTTP = &http.Client{Timeout: 10 * time.Second}

// maxAnswerBytes bounds what is read from Cloudinary: its JSON answers are a
// few kilobytes, and a misbehaving endpoint must not exhaust memory.
const maxAnswerBytes = 1 << 20

// Resource asks the Admin API for the asset of the "upload" delivery type.
// A 404 yields ErrNotFound; every failure of Cloudinary wraps ErrUnavailable.
func (c *Client) Resource(ctx context.Context, resourceType, publicID string) (*Resource, error) {
	op := fmt.Sprintf("look up %s %q", resourceType, publicID)
	if err := c.check(op, resourceType, publicID); err != nil {
		return nil, err
	}
	endpoint := c.apiURL("resources", url.PathEscape(resourceType), "upload", escapePublicID(publicID))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	// The Admin API takes the account's key and secret as Basic credentials;
	// they travel in a header, never in the URL that errors may print.
	req.SetBasicAuth(c.APIKey, c.APISecret)

	ans, err := c.send(req, op)
	if err != nil {
		return nil, err
	}
	switch ans.status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s%s", ErrNotFound, op, c.providerMessage(ans))
	default:
		return nil, c.statusError(op, ans)
	}

	var res Resource
	if err := json.Unmarshal(ans.body, &res); err != nil {
		return nil, fmt.Errorf("%w: %s: undecodable answer: %w", ErrUnavailable, op, err)
	}
	// An answer about another asset would let a record point at something
	// the user never uploaded; treat it as a broken provider, not as proof.
	if res.PublicID != "" && res.PublicID != publicID {
		return nil, fmt.Errorf("%w: %s: answer is about public ID %q", ErrUnavailable, op, res.PublicID)
	}
	if res.PublicID == "" {
		res.PublicID = publicID
	}
	if res.ResourceType == "" {
		res.ResourceType = resourceType
	}
	return &res, nil
}

// destroyAnswer is the body of a successful destroy call.
type destroyAnswer struct {
	Result string `json:"result"`
}

// Destroy deletes the asset of the "upload" delivery type and purges it from
// the CDN (invalidate=true), so a deleted file stops being served. The call
// is signed like an upload (signature version 2). Cloudinary's "not found"
// yields ErrNotFound, which callers deleting a record may treat as done.
func (c *Client) Destroy(ctx context.Context, resourceType, publicID string) error {
	op := fmt.Sprintf("destroy %s %q", resourceType, publicID)
	if err := c.check(op, resourceType, publicID); err != nil {
		return err
	}
	signed := map[string]string{
		"public_id":  publicID,
		"timestamp":  strconv.FormatInt(time.Now().Unix(), 10),
		"type":       "upload",
		"invalidate": "true",
	}
	form := url.Values{}
	for k, v := range signed {
		form.Set(k, v)
	}
	form.Set("api_key", c.APIKey)
	form.Set("signature", signer.SignCloudinary(signed, c.APISecret, c.Algorithm, 2))

	endpoint := c.apiURL(url.PathEscape(resourceType), "destroy")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	ans, err := c.send(req, op)
	if err != nil {
		return err
	}
	// Both outcomes of a destroy arrive as 200; any other status, including
	// 404 (which would mean a wrong cloud name, not a missing asset), is a
	// failure that must keep the broker's record in place.
	if ans.status != http.StatusOK {
		return c.statusError(op, ans)
	}
	var result destroyAnswer
	if err := json.Unmarshal(ans.body, &result); err != nil {
		return fmt.Errorf("%w: %s: undecodable answer: %w", ErrUnavailable, op, err)
	}
	switch result.Result {
	case "ok":
		return nil
	case "not found":
		return fmt.Errorf("%w: %s", ErrNotFound, op)
	default:
		return fmt.Errorf("%w: %s: unexpected result %q", ErrUnavailable, op, result.Result)
	}
}

// DeliveryURLFor builds the URL Cloudinary gives an asset of the "upload"
// type: {DeliveryURL}/{cloud}/{resource_type}/upload/v{version}/{public_id}
// followed by ".{format}" unless format is empty (raw assets keep their
// extension inside the public ID). Comparing a client's secure_url with it
// stops a client from recording a URL that is not this asset's.
func (c *Client) DeliveryURLFor(resourceType string, version int64, publicID, format string) string {
	var b strings.Builder
	b.WriteString(baseURL(c.DeliveryURL, DefaultDeliveryURL))
	for _, seg := range []string{url.PathEscape(c.CloudName), url.PathEscape(resourceType), "upload", "v" + strconv.FormatInt(version, 10), escapePublicID(publicID)} {
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if format != "" {
		b.WriteByte('.')
		b.WriteString(url.PathEscape(format))
	}
	return b.String()
}

// check refuses calls that cannot succeed before anything goes on the wire.
func (c *Client) check(op, resourceType, publicID string) error {
	if c.CloudName == "" || c.APIKey == "" || c.APISecret == "" {
		return fmt.Errorf("%w: %s: client has no cloud name, API key or API secret", ErrUnavailable, op)
	}
	if c.Algorithm != "" {
		if _, err := signer.ParseAlgorithm(string(c.Algorithm)); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
		}
	}
	// Cloudinary stores every asset under one of these three; "auto" exists
	// only for uploads. A client naming anything else names no asset.
	switch resourceType {
	case "image", "video", "raw":
	default:
		return fmt.Errorf("%w: %s: resource type must be image, video or raw", ErrNotFound, op)
	}
	if why := publicIDProblem(publicID); why != "" {
		return fmt.Errorf("%w: %s: public ID %s", ErrNotFound, op, why)
	}
	return nil
}

// publicIDProblem applies Cloudinary's naming rules (specs/cloudinary.md
// §2.3: at most 255 characters, no leading or trailing space or "/", none of
// ? & # \ % < > +) and says what is wrong, or "" when nothing is. An ID that
// breaks them cannot exist at Cloudinary, so callers report it as not found.
// The rules also keep a client-supplied ID from steering the request
// elsewhere: empty, "." and ".." segments are refused because a proxy or
// server may collapse them and the call would leave the asset's path.
func publicIDProblem(id string) string {
	switch {
	case id == "":
		return "is empty"
	case len(id) > 255:
		return "is longer than 255 characters"
	case strings.HasPrefix(id, " ") || strings.HasSuffix(id, " "):
		return "begins or ends with a space"
	case strings.ContainsAny(id, `?&#\%<>+`):
		return `contains one of ? & # \ % < > +`
	case strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "contains a control character"
	}
	for _, seg := range strings.Split(id, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return `has an empty, "." or ".." path segment`
		}
	}
	return ""
}

// escapePublicID escapes each "/"-separated part of a public ID on its own:
// the slashes are folder separators in Cloudinary's paths and must stay.
func escapePublicID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// apiURL joins already-escaped path segments under {UploadPrefix}/v1_1/{cloud}.
func (c *Client) apiURL(segments ...string) string {
	return baseURL(c.UploadPrefix, DefaultUploadPrefix) + "/v1_1/" + url.PathEscape(c.CloudName) + "/" + strings.Join(segments, "/")
}

func baseURL(configured, fallback string) string {
	if configured == "" {
		return fallback
	}
	return strings.TrimRight(configured, "/")
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// answer is Cloudinary's reply, read whole.
type answer struct {
	status int
	body   []byte
	header http.Header
}

// send performs req and reads the whole (bounded) answer. Transport errors,
// including the context's deadline, wrap both ErrUnavailable and the cause.
func (c *Client) send(req *http.Request, op string) (answer, error) {
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return answer{}, fmt.Errorf("%w: %s: reading the answer: %w", ErrUnavailable, op, err)
	}
	if len(body) > maxAnswerBytes {
		return answer{}, fmt.Errorf("%w: %s: answer larger than %d bytes", ErrUnavailable, op, maxAnswerBytes)
	}
	return answer{status: resp.StatusCode, body: body, header: resp.Header}, nil
}

// statusError reports an unexpected HTTP status as ErrUnavailable, with
// Cloudinary's own message when it sent one.
func (c *Client) statusError(op string, ans answer) error {
	return fmt.Errorf("%w: %s: HTTP %d%s", ErrUnavailable, op, ans.status, c.providerMessage(ans))
}

// providerMessage returns Cloudinary's error message as ": <quoted message>",
// or "" when there is none. The message comes from the standard error body
// {"error":{"message":…}}, else from the X-Cld-Error header Cloudinary copies
// it into (useful when a proxy replaced the body). It is quoted and cut short
// because it goes into logs, and any trace of the API secret is removed:
// Cloudinary does not echo it, but a proxy or emulator in between might.
func (c *Client) providerMessage(ans answer) string {
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := ""
	if json.Unmarshal(ans.body, &body) == nil {
		msg = body.Error.Message
	}
	if msg == "" && ans.header != nil {
		msg = ans.header.Get("X-Cld-Error")
	}
	if msg == "" {
		return ""
	}
	if c.APISecret != "" {
		msg = strings.ReplaceAll(msg, c.APISecret, "[redacted]")
	}
	const maxRunes = 300
	if r := []rune(msg); len(r) > maxRunes {
		msg = string(r[:maxRunes]) + "…"
	}
	return fmt.Sprintf(": %q", msg)
}
