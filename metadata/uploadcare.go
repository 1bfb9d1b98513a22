package metadata

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/provider/uploadcare"
	"github.com/brokerdev/broker/signer"
)

// UploadcareAPI is what the broker asks of Uploadcare's APIs.
type UploadcareAPI interface {
	File(ctx context.Context, uuid string) (*uploadcare.FileInfo, error)
	Store(ctx context.Context, uuid string) (*uploadcare.FileInfo, error)
	Delete(ctx context.Context, uuid string) error
	UploadBase(ctx context.Context, r io.Reader, filename, contentType, store string, metadata map[string]string, ttl time.Duration) (string, error)
	CDNURLFor(uuid string) string
}

// UploadcareSettings is the project and the signing policy.
type UploadcareSettings struct {
	PublicKey string
	SecretKey string
	UploadURL string
	TTL       time.Duration
	// WebhookSecret is the webhook's signing secret (X-Uc-Signature,
	// webhook.go); empty refuses every webhook.
	WebhookSecret string
}

// Uploadcare issues signed uploads and proves them through the REST API.
type Uploadcare struct {
	settings UploadcareSettings
	api      UploadcareAPI
	intents  *IntentSigner
	now      func() time.Time
}

// NewUploadcare builds the Uploadcare side of the use case.
func NewUploadcare(s UploadcareSettings, api UploadcareAPI) *Uploadcare {
	return &Uploadcare{settings: s, api: api, intents: NewIntentSigner(s.SecretKey), now: time.Now}
}

// SetClock replaces the clock (tests).
func (u *Uploadcare) SetClock(now func() time.Time) { u.now = now }

// UploadcareSignature is what a client needs to upload one file. Both the
// Upload API's names (signature, expire) and the file uploader's
// (secureSignature, secureExpire) are given.
type UploadcareSignature struct {
	Signature       string            `json:"signature"`
	Expire          int64             `json:"expire"`
	SecureSignature string            `json:"secureSignature"`
	SecureExpire    string            `json:"secureExpire"`
	PublicKey       string            `json:"public_key"`
	UploadURL       string            `json:"upload_url"`
	Params          map[string]string `json:"params"`
	ExpiresAt       time.Time         `json:"expires_at"`
}

// intentField is the form field carrying the intent.
const intentField = "metadata[" + IntentMetadataKey + "]"

// Sign issues a signed upload for the user. Files are uploaded unstored
// (UPLOADCARE_STORE=0): the broker stores a file when it records it, so an
// upload nobody saves is deleted by Uploadcare after a day.
func (u *Uploadcare) Sign(userID string) (UploadcareSignature, error) {
	expire := u.now().Add(u.settings.TTL).Truncate(time.Second)
	intent, err := u.intents.Issue(userID, expire)
	if err != nil {
		return UploadcareSignature{}, err
	}
	exp := strconv.FormatInt(expire.Unix(), 10)
	sig := signer.SignUploadcareUpload(u.settings.SecretKey, expire.Unix())
	return UploadcareSignature{
		Signature:       sig,
		Expire:          expire.Unix(),
		SecureSignature: sig,
		SecureExpire:    exp,
		PublicKey:       u.settings.PublicKey,
		UploadURL:       u.settings.UploadURL + "/base/",
		Params: map[string]string{
			"UPLOADCARE_PUB_KEY": u.settings.PublicKey,
			"UPLOADCARE_STORE":   "0",
			"signature":          sig,
			"expire":             exp,
			intentField:          intent,
		},
		ExpiresAt: expire.UTC(),
	}, nil
}

// intentSkew tolerates clocks of Uploadcare and the broker that disagree a
// little when comparing upload time and intent expiry.
const intentSkew = time.Minute

// Prove looks the file up with the REST API, checks that it was uploaded
// under an intent issued to this user before the intent expired, stores it,
// and returns the record to commit.
func (u *Uploadcare) Prove(ctx context.Context, userID, uuid string) (File, error) {
	if !uploadcare.ValidUUID(uuid) {
		return File{}, apierror.InvalidRequest("uuid must be an Uploadcare file UUID")
	}
	info, err := u.lookup(ctx, uuid)
	if err != nil {
		return File{}, err
	}
	intent, ok := u.intents.Verify(info.Metadata[IntentMetadataKey])
	switch {
	case !ok:
		return File{}, apierror.Forbidden("file %s was not uploaded with a signature this broker issued", uuid)
	case intent.UserID != userID:
		return File{}, apierror.Forbidden("file %s was not uploaded by you", uuid)
	case !info.DatetimeUploaded.IsZero() && info.DatetimeUploaded.After(intent.Expire.Add(intentSkew)):
		return File{}, apierror.Forbidden("file %s was uploaded after its signature expired", uuid)
	}
	return u.storeAndDescribe(ctx, userID, info)
}

// lookup is the REST proof that the file exists and is not deleted.
func (u *Uploadcare) lookup(ctx context.Context, uuid string) (*uploadcare.FileInfo, error) {
	info, err := u.api.File(ctx, uuid)
	switch {
	case errors.Is(err, uploadcare.ErrNotFound):
		return nil, apierror.Wrap(apierror.CodeUploadNotFound, err, "Uploadcare has no file %s", uuid)
	case err != nil:
		return nil, apierror.Wrap(apierror.CodeProviderUnavailable, err, "Uploadcare did not answer; nothing was recorded, try again")
	case info.DatetimeRemoved != nil:
		return nil, apierror.New(apierror.CodeUploadNotFound, "Uploadcare file %s was deleted", uuid)
	}
	return info, nil
}

// storeAndDescribe stores the file at Uploadcare (unstored files expire)
// and builds the record from what Uploadcare reported.
func (u *Uploadcare) storeAndDescribe(ctx context.Context, userID string, info *uploadcare.FileInfo) (File, error) {
	if info.DatetimeStored == nil {
		stored, err := u.api.Store(ctx, info.UUID)
		switch {
		case errors.Is(err, uploadcare.ErrNotFound):
			return File{}, apierror.Wrap(apierror.CodeUploadNotFound, err, "Uploadcare has no file %s", info.UUID)
		case err != nil:
			return File{}, apierror.Wrap(apierror.CodeProviderUnavailable, err, "Uploadcare did not store the file; nothing was recorded, try again")
		}
		info = stored
	}
	f := File{
		Provider:         ProviderUploadcare,
		ProviderID:       info.UUID,
		URL:              u.api.CDNURLFor(info.UUID),
		ResourceType:     uploadcareResourceType(info),
		UserID:           userID,
		Bytes:            &info.Size,
		MimeType:         nonEmpty(info.MimeType),
		OriginalFilename: nonEmpty(info.OriginalFilename),
	}
	if img := info.ContentInfo.Image; img != nil {
		f.Width, f.Height = &img.Width, &img.Height
		f.Format = nonEmpty(strings.ToLower(img.Format))
	}
	if f.Format == nil {
		if ext := strings.TrimPrefix(path.Ext(info.OriginalFilename), "."); isFormat(ext) {
			f.Format = nonEmpty(strings.ToLower(ext))
		}
	}
	return f, nil
}

// uploadcareResourceType maps Uploadcare's file kinds onto the resource
// types the files table shares with Cloudinary.
func uploadcareResourceType(info *uploadcare.FileInfo) string {
	switch {
	case info.IsImage:
		return "image"
	case strings.HasPrefix(info.MimeType, "video/"), strings.HasPrefix(info.MimeType, "audio/"):
		return "video"
	default:
		return "raw"
	}
}

// Upload streams a file to Uploadcare for the user (the Uploadcare guide's
// server-side upload) and returns the record to commit. r must enforce the
// size limit itself; its error is returned wrapped, so the caller can tell
// its own limit from Uploadcare's failure.
func (u *Uploadcare) Upload(ctx context.Context, userID string, r io.Reader, filename, contentType string) (File, error) {
	expire := u.now().Add(u.settings.TTL)
	intent, err := u.intents.Issue(userID, expire)
	if err != nil {
		return File{}, err
	}
	uuid, err := u.api.UploadBase(ctx, r, filename, contentType, "0", map[string]string{IntentMetadataKey: intent}, u.settings.TTL)
	if err != nil {
		return File{}, uploadFailure(err)
	}
	info, err := u.lookup(ctx, uuid)
	if err != nil {
		return File{}, err
	}
	return u.storeAndDescribe(ctx, userID, info)
}

// uploadFailure sorts a failed UploadBase into the contract's answers. An
// error of the reader itself (the caller's size limit, its client cutting
// the body short) is none of Uploadcare's and passes through unchanged.
func uploadFailure(err error) error {
	var refused *uploadcare.UploadError
	switch {
	case errors.Is(err, uploadcare.ErrUnavailable):
		return apierror.Wrap(apierror.CodeProviderUnavailable, err, "Uploadcare did not take the file; nothing was recorded, try again")
	case !errors.As(err, &refused):
		return err
	case refused.Status == http.StatusRequestEntityTooLarge:
		return apierror.Wrap(apierror.CodePayloadTooLarge, err, "Uploadcare refused the file as too large: %s", refused.Message)
	case refused.Status == http.StatusUnauthorized || refused.Status == http.StatusForbidden:
		// Signature and project key are the broker's configuration: the
		// client can do nothing about them.
		return apierror.Wrap(apierror.CodeProviderUnavailable, err, "Uploadcare refused the broker's credentials (%s); nothing was recorded", refused.Code)
	default:
		return apierror.Wrap(apierror.CodeInvalidRequest, err, "Uploadcare refused the file: %s", refused.Message)
	}
}

// Remove deletes the file at Uploadcare. A file Uploadcare no longer has is
// already gone, which is what the caller wants.
func (u *Uploadcare) Remove(ctx context.Context, f File) error {
	err := u.api.Delete(ctx, f.ProviderID)
	if err == nil || errors.Is(err, uploadcare.ErrNotFound) {
		return nil
	}
	return apierror.Wrap(apierror.CodeProviderUnavailable, err, "Uploadcare did not delete the file; the record is kept, try again")
}
