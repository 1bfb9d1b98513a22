package metadata

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/provider/cloudinary"
	"github.com/brokerdev/broker/signer"
)

// CloudinaryAPI is what the broker asks of Cloudinary's APIs.
type CloudinaryAPI interface {
	Resource(ctx context.Context, resourceType, publicID string) (*cloudinary.Resource, error)
	Destroy(ctx context.Context, resourceType, publicID string) error
	DeliveryURLFor(resourceType string, version int64, publicID, format string) string
}

// CloudinarySettings is the account and the signing policy.
type CloudinarySettings struct {
	CloudName    string
	APIKey       string
	APISecret    string
	UploadPrefix string
	Folder       string
	Algorithm    signer.Algorithm
	// TTL is how long an issued signature stays good (at most one hour,
	// Cloudinary's own window).
	TTL time.Duration
	// NotificationURL, when set, is signed into every upload so Cloudinary
	// reports the upload to the broker's webhook too.
	NotificationURL string
	// WebhookMaxAge is how old a notification's X-Cld-Timestamp may be
	// (webhook.go); zero means the SDKs' 2 h.
	WebhookMaxAge time.Duration
}

// Cloudinary issues upload signatures and proves uploads.
type Cloudinary struct {
	settings CloudinarySettings
	api      CloudinaryAPI
	now      func() time.Time
}

// NewCloudinary builds the Cloudinary side of the use case.
func NewCloudinary(s CloudinarySettings, api CloudinaryAPI) *Cloudinary {
	return &Cloudinary{settings: s, api: api, now: time.Now}
}

// SetClock replaces the clock (tests and benchmarks).
func (c *Cloudinary) SetClock(now func() time.Time) { c.now = now }

// cloudinaryWindow is how long Cloudinary accepts a signed timestamp.
const cloudinaryWindow = time.Hour

var uploadResourceTypes = map[string]bool{"image": true, "video": true, "raw": true, "auto": true}
var storedResourceTypes = map[string]bool{"image": true, "video": true, "raw": true}

// CloudinarySignature is what a client needs to upload one asset.
type CloudinarySignature struct {
	Signature    string            `json:"signature"`
	Timestamp    int64             `json:"timestamp"`
	APIKey       string            `json:"api_key"`
	CloudName    string            `json:"cloud_name"`
	ResourceType string            `json:"resource_type"`
	UploadURL    string            `json:"upload_url"`
	Params       map[string]string `json:"params"`
	ExpiresAt    time.Time         `json:"expires_at"`
}

// UserPrefix is the public-ID prefix of everything issued to the user.
func (c *Cloudinary) UserPrefix(userID string) string {
	return c.settings.Folder + "/" + UserSegment(userID) + "/"
}

// Sign issues a signature for one upload by the user. The broker chooses
// every signed value: the timestamp, a fresh public ID under the user's
// prefix and overwrite=false, so the signature is good for that one new asset
// only and cannot replace another (or, replayed, the same) asset.
func (c *Cloudinary) Sign(userID, resourceType string) (CloudinarySignature, error) {
	if resourceType == "" {
		resourceType = "auto"
	}
	if !uploadResourceTypes[resourceType] {
		return CloudinarySignature{}, apierror.InvalidRequest("resource_type must be image, video, raw or auto")
	}
	unique, err := randomID(20)
	if err != nil {
		return CloudinarySignature{}, fmt.Errorf("public id: %w", err)
	}
	// Cloudinary accepts a timestamp for one hour; signing an older one
	// shortens the signature's life to TTL.
	timestamp := c.now().Add(c.settings.TTL - cloudinaryWindow).Unix()
	params := map[string]string{
		"timestamp": strconv.FormatInt(timestamp, 10),
		"public_id": c.UserPrefix(userID) + unique,
		"overwrite": "false",
	}
	if c.settings.NotificationURL != "" {
		params["notification_url"] = c.settings.NotificationURL
	}
	return CloudinarySignature{
		Signature:    signer.SignCloudinary(params, c.settings.APISecret, c.settings.Algorithm, 2),
		Timestamp:    timestamp,
		APIKey:       c.settings.APIKey,
		CloudName:    c.settings.CloudName,
		ResourceType: resourceType,
		UploadURL:    c.settings.UploadPrefix + "/v1_1/" + c.settings.CloudName + "/" + resourceType + "/upload",
		Params:       params,
		ExpiresAt:    time.Unix(timestamp, 0).Add(cloudinaryWindow).UTC(),
	}, nil
}

// CloudinaryEvidence is what a client reports of an upload: Cloudinary's
// upload response, whole or in part.
type CloudinaryEvidence struct {
	PublicID         string  `json:"public_id"`
	Version          *int64  `json:"version"`
	Signature        string  `json:"signature"`
	SecureURL        string  `json:"secure_url"`
	ResourceType     string  `json:"resource_type"`
	Type             string  `json:"type"`
	Bytes            *int64  `json:"bytes"`
	Format           *string `json:"format"`
	Width            *int    `json:"width"`
	Height           *int    `json:"height"`
	OriginalFilename *string `json:"original_filename"`
}

// forbiddenInPublicID reports whether s holds a character Cloudinary does
// not accept in a public ID (specs §2.3): ? & # \ % < > + or a control
// character. Byte by byte rather than a regexp, which cost more than the
// signature check on every save: the forbidden characters are all ASCII,
// and no byte of a multi-byte UTF-8 character is.
func forbiddenInPublicID(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || strings.IndexByte(`?&#\%<>+`, c) >= 0 {
			return true
		}
	}
	return false
}

// isFormat reports whether s is a file extension: 1 to 16 ASCII letters
// and digits.
func isFormat(s string) bool {
	if len(s) == 0 || len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isASCIIAlnum(s[i]) {
			return false
		}
	}
	return true
}

// Prove checks the evidence of an upload and returns the record to commit.
// Nothing in the record rests on the client's word alone: the public ID and
// version are proven by Cloudinary's response signature, or everything comes
// from Cloudinary's Admin API.
func (c *Cloudinary) Prove(ctx context.Context, userID string, ev CloudinaryEvidence) (File, error) {
	if err := ev.validate(); err != nil {
		return File{}, err
	}
	if !strings.HasPrefix(ev.PublicID, c.UserPrefix(userID)) {
		return File{}, apierror.Forbidden("public_id %q was not issued to you: yours start with %q", ev.PublicID, c.UserPrefix(userID))
	}
	if ev.Type != "" && ev.Type != "upload" {
		return File{}, apierror.New(apierror.CodeInvalidEvidence, "type %q is not an upload the broker signed", ev.Type)
	}
	var f File
	var err error
	if ev.Version != nil {
		f, err = c.fromSignedResponse(ev)
	} else {
		f, err = c.fromAdminAPI(ctx, ev)
	}
	if err != nil {
		return File{}, err
	}
	f.Provider = ProviderCloudinary
	f.ProviderID = ev.PublicID
	f.UserID = userID
	if f.Format != nil {
		if t := mime.TypeByExtension("." + strings.ToLower(*f.Format)); t != "" {
			t, _, _ = strings.Cut(t, ";")
			f.MimeType = &t
		}
	}
	return f, nil
}

func (ev *CloudinaryEvidence) validate() error {
	switch {
	case ev.PublicID == "":
		return apierror.InvalidRequest("public_id is required")
	case len(ev.PublicID) > 255 || !utf8.ValidString(ev.PublicID) || forbiddenInPublicID(ev.PublicID):
		return apierror.InvalidRequest("public_id is not a valid Cloudinary public ID")
	case ev.ResourceType != "" && !storedResourceTypes[ev.ResourceType]:
		return apierror.InvalidRequest("resource_type must be image, video or raw")
	case (ev.Version == nil) != (ev.Signature == ""):
		return apierror.InvalidRequest("version and signature go together: send both (from the upload response) or neither")
	case ev.Version != nil && *ev.Version <= 0:
		return apierror.InvalidRequest("version must be a positive integer")
	case ev.Bytes != nil && *ev.Bytes < 0, ev.Width != nil && *ev.Width < 0, ev.Height != nil && *ev.Height < 0:
		return apierror.InvalidRequest("bytes, width and height cannot be negative")
	case ev.Format != nil && *ev.Format != "" && !isFormat(*ev.Format):
		return apierror.InvalidRequest("format must be a file extension such as png")
	case ev.OriginalFilename != nil && (len(*ev.OriginalFilename) > 255 || !utf8.ValidString(*ev.OriginalFilename)):
		return apierror.InvalidRequest("original_filename must be valid UTF-8 of at most 255 bytes")
	}
	if ev.ResourceType == "" {
		// The seed guide always sends it; when a client leaves it out,
		// image is Cloudinary's own default.
		ev.ResourceType = "image"
	}
	return nil
}

// fromSignedResponse trusts the descriptive fields of an upload response
// whose public ID and version Cloudinary signed; the URL is rebuilt from the
// proven values, so a client cannot point the record elsewhere.
func (c *Cloudinary) fromSignedResponse(ev CloudinaryEvidence) (File, error) {
	if !signer.VerifyCloudinaryResponse(ev.PublicID, *ev.Version, c.settings.APISecret, ev.Signature, c.settings.Algorithm) {
		return File{}, apierror.New(apierror.CodeInvalidEvidence, "the upload response signature does not verify")
	}
	format := ""
	if ev.Format != nil {
		format = *ev.Format
	}
	url := c.api.DeliveryURLFor(ev.ResourceType, *ev.Version, ev.PublicID, format)
	if ev.SecureURL != "" && ev.SecureURL != url {
		return File{}, apierror.New(apierror.CodeInvalidEvidence, "secure_url is not Cloudinary's URL for this asset (expected %s)", url)
	}
	return File{
		URL:              url,
		ResourceType:     ev.ResourceType,
		Bytes:            ev.Bytes,
		Format:           nonEmpty(format),
		Width:            ev.Width,
		Height:           ev.Height,
		OriginalFilename: ev.OriginalFilename,
	}, nil
}

// fromAdminAPI asks Cloudinary for the asset: the seed guide's three-field
// body carries no proof of its own.
func (c *Cloudinary) fromAdminAPI(ctx context.Context, ev CloudinaryEvidence) (File, error) {
	res, err := c.api.Resource(ctx, ev.ResourceType, ev.PublicID)
	switch {
	case errors.Is(err, cloudinary.ErrNotFound):
		return File{}, apierror.Wrap(apierror.CodeUploadNotFound, err, "Cloudinary has no %s asset %q", ev.ResourceType, ev.PublicID)
	case err != nil:
		return File{}, apierror.Wrap(apierror.CodeProviderUnavailable, err, "Cloudinary did not answer; nothing was recorded, try again")
	}
	url := c.api.DeliveryURLFor(res.ResourceType, res.Version, res.PublicID, res.Format)
	if res.SecureURL != "" {
		url = res.SecureURL
	}
	if ev.SecureURL != "" && ev.SecureURL != url {
		return File{}, apierror.New(apierror.CodeInvalidEvidence, "secure_url is not Cloudinary's URL for this asset (expected %s)", url)
	}
	f := File{
		URL:              url,
		ResourceType:     res.ResourceType,
		Bytes:            &res.Bytes,
		Format:           nonEmpty(res.Format),
		OriginalFilename: nonEmpty(res.OriginalFilename),
	}
	if res.Width > 0 || res.Height > 0 {
		f.Width, f.Height = &res.Width, &res.Height
	}
	return f, nil
}

// Remove destroys the asset at Cloudinary. An asset Cloudinary no longer
// has is already gone, which is what the caller wants.
func (c *Cloudinary) Remove(ctx context.Context, f File) error {
	err := c.api.Destroy(ctx, f.ResourceType, f.ProviderID)
	if err == nil || errors.Is(err, cloudinary.ErrNotFound) {
		return nil
	}
	return apierror.Wrap(apierror.CodeProviderUnavailable, err, "Cloudinary did not delete the asset; the record is kept, try again")
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomID returns n characters of [a-z0-9] from crypto/rand, like the
// public IDs Cloudinary generates itself. Bytes of 252 and above are dropped
// so that every character is equally likely (252 = 7 × 36).
func randomID(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		for _, b := range buf {
			if b < 252 && len(out) < n {
				out = append(out, idAlphabet[b%36])
			}
		}
	}
	return string(out), nil
}
