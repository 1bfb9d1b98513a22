package metadata

import (
	"context"
	"errors"
	"io"

	"github.com/brokerdev/broker/apierror"
)

// Service is the commit use case shared by every road an upload takes to the
// database: the client's /save-metadata, the server-side /upload and the
// providers' webhooks all end in Commit, so they agree on idempotency and
// ownership.
type Service struct {
	Store      Store
	Cloudinary *Cloudinary // nil when Cloudinary is not configured
	Uploadcare *Uploadcare // nil when Uploadcare is not configured
}

// Commit records a proven file for its owner. The first commit of an asset
// creates the record (created=true); the same owner committing it again gets
// the existing record back; another owner gets 409.
func (s *Service) Commit(ctx context.Context, f File) (File, bool, error) {
	stored, created, err := s.Store.SaveFile(ctx, f)
	if err != nil {
		return File{}, false, storeError(err)
	}
	if !created && stored.UserID != f.UserID {
		return File{}, false, apierror.New(apierror.CodeConflict, "this asset is already recorded for another user")
	}
	return stored, created, nil
}

// SaveCloudinary proves a Cloudinary upload for the user and commits it.
func (s *Service) SaveCloudinary(ctx context.Context, userID string, ev CloudinaryEvidence) (File, bool, error) {
	if s.Cloudinary == nil {
		return File{}, false, apierror.InvalidRequest("Cloudinary is not configured on this broker")
	}
	f, err := s.Cloudinary.Prove(ctx, userID, ev)
	if err != nil {
		return File{}, false, err
	}
	return s.Commit(ctx, f)
}

// SaveUploadcare proves an Uploadcare upload for the user and commits it.
func (s *Service) SaveUploadcare(ctx context.Context, userID, uuid string) (File, bool, error) {
	if s.Uploadcare == nil {
		return File{}, false, apierror.InvalidRequest("Uploadcare is not configured on this broker")
	}
	f, err := s.Uploadcare.Prove(ctx, userID, uuid)
	if err != nil {
		return File{}, false, err
	}
	return s.Commit(ctx, f)
}

// UploadToUploadcare streams a file to Uploadcare for the user and commits it.
func (s *Service) UploadToUploadcare(ctx context.Context, userID string, r io.Reader, filename, contentType string) (File, bool, error) {
	if s.Uploadcare == nil {
		return File{}, false, apierror.InvalidRequest("Uploadcare is not configured on this broker")
	}
	f, err := s.Uploadcare.Upload(ctx, userID, r, filename, contentType)
	if err != nil {
		return File{}, false, err
	}
	return s.Commit(ctx, f)
}

// Get returns one of the user's files.
func (s *Service) Get(ctx context.Context, userID, id string) (File, error) {
	f, err := s.Store.GetFile(ctx, userID, id)
	if err != nil {
		return File{}, storeError(err)
	}
	return f, nil
}

// List returns a page of the user's files and the cursor of the next page
// (zero when this page is the last).
func (s *Service) List(ctx context.Context, userID string, q ListQuery) ([]File, Cursor, error) {
	if q.Limit < 1 || q.Limit > 100 {
		return nil, Cursor{}, apierror.InvalidRequest("limit must be between 1 and 100")
	}
	// One row more than asked tells whether a next page exists without a
	// second query.
	want := q.Limit
	q.Limit++
	files, err := s.Store.ListFiles(ctx, userID, q)
	if err != nil {
		return nil, Cursor{}, storeError(err)
	}
	if len(files) <= want {
		return files, Cursor{}, nil
	}
	files = files[:want]
	last := files[want-1]
	return files, Cursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}

// Delete removes the asset at its provider first, then the record: a
// provider failure leaves the record in place (502) so the user can retry,
// rather than leaving an orphaned asset nobody can find.
func (s *Service) Delete(ctx context.Context, userID, id string) error {
	f, err := s.Get(ctx, userID, id)
	if err != nil {
		return err
	}
	if err := s.removeAtProvider(ctx, f); err != nil {
		return err
	}
	// Not found here means the provider's delete notification removed the
	// record while the provider was deleting (webhook.go): gone either
	// way, as the user asked.
	if err := s.Store.DeleteFile(ctx, userID, id); err != nil && !errors.Is(err, ErrNotFound) {
		return storeError(err)
	}
	return nil
}

func (s *Service) removeAtProvider(ctx context.Context, f File) error {
	var p interface {
		Remove(ctx context.Context, f File) error
	}
	// Assigned only when configured: a nil *Cloudinary in the interface
	// would not compare equal to nil.
	switch {
	case f.Provider == ProviderCloudinary && s.Cloudinary != nil:
		p = s.Cloudinary
	case f.Provider == ProviderUploadcare && s.Uploadcare != nil:
		p = s.Uploadcare
	default:
		return apierror.New(apierror.CodeProviderUnavailable, "%s is not configured on this broker, so its asset cannot be deleted", f.Provider)
	}
	return p.Remove(ctx, f)
}

// storeError turns the Store's sentinel errors into the contract's answers.
func storeError(err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return apierror.Wrap(apierror.CodeNotFound, err, "no such file")
	case errors.Is(err, ErrUnavailable):
		return apierror.Wrap(apierror.CodeUnavailable, err, "the database is unavailable; try again shortly")
	default:
		return err
	}
}
