// Package metadata is the broker's use case: the File record, the Store it
// lives in, and the commit that turns a provider's evidence into a record.
package metadata

import (
	"context"
	"errors"
	"time"
)

// Providers.
const (
	ProviderCloudinary = "cloudinary"
	ProviderUploadcare = "uploadcare"
)

// File is one uploaded asset owned by one user. Pointer fields are the ones a
// provider may not report; they serialise as null.
type File struct {
	ID               string    `json:"id"`
	Provider         string    `json:"provider"`
	ProviderID       string    `json:"provider_id"`
	URL              string    `json:"url"`
	ResourceType     string    `json:"resource_type"`
	UserID           string    `json:"user_id"`
	Bytes            *int64    `json:"bytes"`
	Format           *string   `json:"format"`
	MimeType         *string   `json:"mime_type"`
	Width            *int      `json:"width"`
	Height           *int      `json:"height"`
	OriginalFilename *string   `json:"original_filename"`
	CreatedAt        time.Time `json:"created_at"`
}

// ListQuery selects a page of one user's files, newest first.
type ListQuery struct {
	Provider     string // "" for all
	ResourceType string // "" for all
	Limit        int    // 1..100
	// After is the keyset position to continue from (exclusive); zero for the first page.
	After Cursor
}

// Cursor is a keyset position: files strictly older than (CreatedAt, ID).
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

// ErrNotFound is returned by a Store when no row matches (for this user).
var ErrNotFound = errors.New("metadata: not found")

// ErrUnavailable is wrapped by a Store when the database cannot be reached;
// the HTTP layer answers 503 with Retry-After.
var ErrUnavailable = errors.New("metadata: database unavailable")

// Store keeps File records. Every read and delete is scoped to one user;
// only SaveFile, to enforce one owner per asset, and FindAsset, for
// webhooks, look across users.
type Store interface {
	// SaveFile inserts f unless a record for (f.Provider, f.ProviderID)
	// exists. It returns the record now stored (f, or the existing one,
	// whoever owns it) and whether this call created it.
	SaveFile(ctx context.Context, f File) (stored File, created bool, err error)
	// GetFile returns the user's file with this id, or ErrNotFound.
	GetFile(ctx context.Context, userID, id string) (File, error)
	// GetByProviderID returns the user's file for this provider asset, or ErrNotFound.
	GetByProviderID(ctx context.Context, userID, provider, providerID string) (File, error)
	// ListFiles returns up to q.Limit of the user's files, newest first.
	ListFiles(ctx context.Context, userID string, q ListQuery) ([]File, error)
	// DeleteFile removes the user's file with this id, or returns ErrNotFound.
	DeleteFile(ctx context.Context, userID, id string) error
	// FindAsset returns the record of a provider asset whoever owns it, or
	// ErrNotFound: a webhook learns of an asset before it knows the owner.
	FindAsset(ctx context.Context, provider, providerID string) (File, error)
	// WebhookDelivered reports whether a webhook delivery with this key
	// (the SHA-256 of its body) was recorded for the provider.
	WebhookDelivered(ctx context.Context, provider string, key []byte) (bool, error)
	// RecordWebhook records a delivery at the given time; recording the
	// same key again changes nothing and is no error.
	RecordWebhook(ctx context.Context, provider string, key []byte, at time.Time) error
	// PruneWebhooks forgets the deliveries recorded before the given time
	// and returns how many it forgot.
	PruneWebhooks(ctx context.Context, before time.Time) (int64, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the connections.
	Close()
}
