package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/signer"
)

// Webhooks are the second road an upload takes to its record: the
// provider's own notification, for the client that never calls
// /save-metadata (a tab closed right after the upload). Both roads end in
// Commit, so whichever arrives first creates the record and the other finds
// it. A notification is trusted only after its signature verifies over the
// raw body, and even then the record rests on the same proof as a client's
// save: Cloudinary's Admin API, Uploadcare's REST API (which also stores the
// file). The notification names the asset and, through the public ID or the
// intent, its owner; the provider's API describes it.
//
// Every delivery the broker handled is remembered by the SHA-256 of its
// body (Store.RecordWebhook), so a replay, or a provider's retry of a
// delivery that did succeed, answers "repeat" and changes nothing, even
// after the user deleted the file in between. A delivery is remembered only
// once it was handled: one that failed for a reason that may pass (database
// or provider down) is answered with an error so the provider retries, and
// handling it again is harmless because every step is idempotent.

// DefaultCloudinaryWebhookMaxAge is how old X-Cld-Timestamp may be when
// CloudinarySettings.WebhookMaxAge is zero: the official SDKs' 7200 s.
const DefaultCloudinaryWebhookMaxAge = 2 * time.Hour

// cloudinaryWebhookFutureSkew is how far X-Cld-Timestamp may lie ahead of
// the broker's clock. The SDKs check no future at all (spec §4), which would
// let a timestamp in milliseconds, or far ahead, stay fresh for ever.
const cloudinaryWebhookFutureSkew = 5 * time.Minute

// WebhookRetention is how long a handled delivery is remembered: beyond
// Uploadcare's 72 hours of retries and far beyond Cloudinary's staleness
// window, after which a replay is refused anyway or finds nothing to do.
const WebhookRetention = 7 * 24 * time.Hour

// webhookPruneOdds: one handled delivery in this many also prunes the
// deliveries older than WebhookRetention, so the table stays small without
// a scheduler, and replicas rarely prune at the same moment.
const webhookPruneOdds = 64

// WebhookOutcome says what a notification did.
type WebhookOutcome string

// Outcomes of a notification.
const (
	// WebhookCreated: this notification created the record.
	WebhookCreated WebhookOutcome = "created"
	// WebhookRepeat: the record already existed (the client's save, or
	// another delivery, came first), or this very delivery was handled
	// before. Nothing changed.
	WebhookRepeat WebhookOutcome = "repeat"
	// WebhookDeleted: the asset's record was removed.
	WebhookDeleted WebhookOutcome = "deleted"
	// WebhookIgnored: a genuine notification that asks nothing of the
	// broker (another event, an asset the broker did not issue, an asset
	// the provider no longer has). Retrying would not change that, so it
	// is answered as a success.
	WebhookIgnored WebhookOutcome = "ignored"
)

// WebhookResult is what handling a notification did.
type WebhookResult struct {
	Outcome WebhookOutcome
	// File is the record an upload notification created or found.
	File *File
	// Removed counts the records a delete notification removed.
	Removed int
	// Reason says, for a person, why a repeat or ignored notification
	// changed nothing.
	Reason string
	// Routine marks an ignored notification of a kind the broker never
	// acts on (file.stored, eager…), as opposed to one it turned down,
	// which is worth a log line.
	Routine bool
}

func ignored(format string, args ...any) WebhookResult {
	return WebhookResult{Outcome: WebhookIgnored, Reason: fmt.Sprintf(format, args...)}
}

func routine(format string, args ...any) WebhookResult {
	r := ignored(format, args...)
	r.Routine = true
	return r
}

// cloudinaryNotification is the part of a Cloudinary notification the
// broker reads. Cloudinary adds fields over time (spec §3, §4), so unknown
// ones are skipped; every field read is a string, so no number format or
// null can make a genuine notification undecodable.
type cloudinaryNotification struct {
	NotificationType string `json:"notification_type"`
	// An upload notification is the upload response.
	PublicID     string `json:"public_id"`
	ResourceType string `json:"resource_type"`
	Type         string `json:"type"`
	// A delete notification names one or more assets.
	Resources []cloudinaryNotifiedAsset `json:"resources"`
}

type cloudinaryNotifiedAsset struct {
	PublicID     string `json:"public_id"`
	ResourceType string `json:"resource_type"`
	Type         string `json:"type"`
}

// CloudinaryWebhook handles POST /webhooks/cloudinary: body is the raw
// request body, timestamp and signature the X-Cld-Timestamp and
// X-Cld-Signature headers. A signature that does not verify, or a stale
// timestamp, is 401 and nothing is read or written.
func (s *Service) CloudinaryWebhook(ctx context.Context, body []byte, timestamp, signature string) (WebhookResult, error) {
	if s.Cloudinary == nil {
		return WebhookResult{}, apierror.NotFound("Cloudinary is not configured on this broker")
	}
	if err := s.Cloudinary.verifyNotification(body, timestamp, signature); err != nil {
		return WebhookResult{}, err
	}
	var n cloudinaryNotification
	if err := decodeNotification(body, &n); err != nil {
		return WebhookResult{}, err
	}
	return s.deliver(ctx, ProviderCloudinary, body, func() (WebhookResult, error) {
		switch n.NotificationType {
		case "upload":
			return s.cloudinaryUploaded(ctx, n)
		case "":
			// The docs' own sample (vector N1) is a bare upload response,
			// without the discriminator.
			if n.PublicID != "" {
				return s.cloudinaryUploaded(ctx, n)
			}
			return ignored("the notification has neither notification_type nor public_id"), nil
		case "delete":
			return s.cloudinaryDeleted(ctx, n)
		default:
			return routine("notification_type %q needs nothing from the broker", n.NotificationType), nil
		}
	})
}

// verifyNotification checks X-Cld-Signature over the raw body and the
// timestamp with the account's secret and algorithm (constant time), then
// the timestamp's age. The signature comes first, so a forger learns
// nothing about the time policy.
func (c *Cloudinary) verifyNotification(body []byte, timestamp, signature string) error {
	if timestamp == "" || signature == "" {
		return apierror.Unauthorized("X-Cld-Signature and X-Cld-Timestamp are required")
	}
	if !signer.VerifyCloudinaryNotification(body, timestamp, signature, c.settings.APISecret, c.settings.Algorithm) {
		return apierror.Unauthorized("X-Cld-Signature does not verify")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return apierror.Unauthorized("X-Cld-Timestamp must be Unix time in seconds")
	}
	maxAge := c.settings.WebhookMaxAge
	if maxAge <= 0 {
		maxAge = DefaultCloudinaryWebhookMaxAge
	}
	sent := time.Unix(ts, 0)
	now := c.now()
	switch {
	case now.Sub(sent) > maxAge:
		return apierror.Unauthorized("the notification is stale: X-Cld-Timestamp is more than %s old", maxAge)
	case sent.Sub(now) > cloudinaryWebhookFutureSkew:
		return apierror.Unauthorized("X-Cld-Timestamp lies in the future")
	}
	return nil
}

// ownerOf names the user a public ID was issued to: the broker hands out
// <folder>/<user segment>/<unique> (UserSegment), and the segment is
// reversible.
func (c *Cloudinary) ownerOf(publicID string) (string, bool) {
	rest, ok := strings.CutPrefix(publicID, c.settings.Folder+"/")
	if !ok {
		return "", false
	}
	segment, unique, ok := strings.Cut(rest, "/")
	if !ok || unique == "" {
		return "", false
	}
	return UserFromSegment(segment)
}

func (s *Service) cloudinaryUploaded(ctx context.Context, n cloudinaryNotification) (WebhookResult, error) {
	if n.PublicID == "" {
		return ignored("the upload notification names no public_id"), nil
	}
	if n.Type != "" && n.Type != "upload" {
		return ignored("type %q: the broker signs uploads of type upload only", n.Type), nil
	}
	if res, done, err := s.recordedAlready(ctx, ProviderCloudinary, n.PublicID); done || err != nil {
		return res, err
	}
	owner, ok := s.Cloudinary.ownerOf(n.PublicID)
	if !ok {
		return ignored("public_id %q is not under %s/<user>/, so this broker did not issue it", n.PublicID, s.Cloudinary.settings.Folder), nil
	}
	// The Admin API rather than the signed fields of the body: it is what
	// a client's bare save relies on, and it tells an asset deleted since
	// (a late retry after the user's DELETE) from a live one.
	f, err := s.Cloudinary.Prove(ctx, owner, CloudinaryEvidence{PublicID: n.PublicID, ResourceType: n.ResourceType, Type: n.Type})
	return s.commitNotified(ctx, f, err)
}

func (s *Service) cloudinaryDeleted(ctx context.Context, n cloudinaryNotification) (WebhookResult, error) {
	assets := n.Resources
	if len(assets) == 0 && n.PublicID != "" {
		assets = []cloudinaryNotifiedAsset{{PublicID: n.PublicID, ResourceType: n.ResourceType, Type: n.Type}}
	}
	removed := 0
	for _, a := range assets {
		if a.PublicID == "" || (a.Type != "" && a.Type != "upload") {
			continue
		}
		ok, err := s.removeRecord(ctx, ProviderCloudinary, a.PublicID, a.ResourceType)
		if err != nil {
			return WebhookResult{}, err
		}
		if ok {
			removed++
		}
	}
	if removed == 0 {
		return ignored("no record of the deleted assets"), nil
	}
	return WebhookResult{Outcome: WebhookDeleted, Removed: removed}, nil
}

// uploadcareNotification is the part of an Uploadcare webhook (spec §5.3)
// the broker reads; unknown fields are skipped.
type uploadcareNotification struct {
	Hook struct {
		Event         string `json:"event"`
		ProjectPubKey string `json:"project_pub_key"`
	} `json:"hook"`
	// Event is where payloads before the hook object carried it.
	Event string `json:"event"`
	Data  struct {
		UUID string `json:"uuid"`
		// Metadata holds the broker's intent. Values are strings at
		// Uploadcare; any other JSON is skipped rather than refused.
		Metadata map[string]any `json:"metadata"`
	} `json:"data"`
}

// UploadcareWebhook handles POST /webhooks/uploadcare: body is the raw
// request body, signature the X-Uc-Signature header. A signature that does
// not verify (or no UPLOADCARE_WEBHOOK_SECRET to verify it with) is 401 and
// nothing is read or written.
func (s *Service) UploadcareWebhook(ctx context.Context, body []byte, signature string) (WebhookResult, error) {
	u := s.Uploadcare
	if u == nil {
		return WebhookResult{}, apierror.NotFound("Uploadcare is not configured on this broker")
	}
	if u.settings.WebhookSecret == "" {
		return WebhookResult{}, apierror.Unauthorized("this broker has no UPLOADCARE_WEBHOOK_SECRET, so no Uploadcare webhook can verify")
	}
	if !signer.VerifyUploadcareWebhook(u.settings.WebhookSecret, body, signature) {
		return WebhookResult{}, apierror.Unauthorized("X-Uc-Signature does not verify")
	}
	var n uploadcareNotification
	if err := decodeNotification(body, &n); err != nil {
		return WebhookResult{}, err
	}
	event := n.Hook.Event
	if event == "" {
		event = n.Event
	}
	return s.deliver(ctx, ProviderUploadcare, body, func() (WebhookResult, error) {
		// Defence in depth: a signing secret shared by two projects
		// must not let one project's files into the other's records.
		if k := n.Hook.ProjectPubKey; k != "" && k != u.settings.PublicKey {
			return ignored("the webhook is for project %q, not this broker's", k), nil
		}
		switch event {
		case "file.uploaded":
			return s.uploadcareUploaded(ctx, n)
		case "file.deleted":
			if n.Data.UUID == "" {
				return ignored("the webhook names no file"), nil
			}
			ok, err := s.removeRecord(ctx, ProviderUploadcare, n.Data.UUID, "")
			switch {
			case err != nil:
				return WebhookResult{}, err
			case !ok:
				return ignored("no record of file %s", n.Data.UUID), nil
			}
			return WebhookResult{Outcome: WebhookDeleted, Removed: 1}, nil
		default:
			return routine("event %q needs nothing from the broker", event), nil
		}
	})
}

func (s *Service) uploadcareUploaded(ctx context.Context, n uploadcareNotification) (WebhookResult, error) {
	uuid := n.Data.UUID
	if uuid == "" {
		return ignored("the webhook names no file"), nil
	}
	if res, done, err := s.recordedAlready(ctx, ProviderUploadcare, uuid); done || err != nil {
		return res, err
	}
	// The intent in the signed payload names the owner; Prove then reads
	// it again from the REST API and checks the two agree, as for a
	// client's save.
	token, _ := n.Data.Metadata[IntentMetadataKey].(string)
	intent, ok := s.Uploadcare.intents.Verify(token)
	if !ok {
		return ignored("file %s was not uploaded with a signature this broker issued", uuid), nil
	}
	f, err := s.Uploadcare.Prove(ctx, intent.UserID, uuid)
	return s.commitNotified(ctx, f, err)
}

// recordedAlready looks the asset up before any provider call: when the
// client's save (or another delivery) came first, the notification is a
// repeat and costs the provider's API nothing. An unreachable database
// fails here, before anything is done at the provider.
func (s *Service) recordedAlready(ctx context.Context, provider, providerID string) (WebhookResult, bool, error) {
	f, err := s.Store.FindAsset(ctx, provider, providerID)
	switch {
	case errors.Is(err, ErrNotFound):
		return WebhookResult{}, false, nil
	case err != nil:
		return WebhookResult{}, false, storeError(err)
	}
	return WebhookResult{Outcome: WebhookRepeat, File: &f, Reason: "the asset is already recorded"}, true, nil
}

// commitNotified commits what a notification's proof gave, through the
// same Commit as a client's save. A refusal that a retry cannot change (not
// this user's, gone at the provider, recorded for someone else) is ignored;
// a failure that may pass (provider or database down) is returned, so the
// provider delivers again later.
func (s *Service) commitNotified(ctx context.Context, f File, proveErr error) (WebhookResult, error) {
	if proveErr != nil {
		if reason, ok := lastingRefusal(proveErr); ok {
			return ignored("%s", reason), nil
		}
		return WebhookResult{}, proveErr
	}
	stored, created, err := s.Commit(ctx, f)
	if err != nil {
		if reason, ok := lastingRefusal(err); ok {
			return ignored("%s", reason), nil
		}
		return WebhookResult{}, err
	}
	if created {
		return WebhookResult{Outcome: WebhookCreated, File: &stored}, nil
	}
	return WebhookResult{Outcome: WebhookRepeat, File: &stored, Reason: "the asset is already recorded"}, nil
}

// lastingRefusal tells the use case's refusals, which the same notification
// would meet again, from failures worth a retry.
func lastingRefusal(err error) (string, bool) {
	e, ok := apierror.As(err)
	if !ok {
		return "", false
	}
	switch e.Code {
	case apierror.CodeForbidden, apierror.CodeConflict, apierror.CodeUploadNotFound,
		apierror.CodeInvalidEvidence, apierror.CodeInvalidRequest, apierror.CodeNotFound:
		return e.Message, true
	}
	return "", false
}

// removeRecord deletes the record of an asset the provider says is gone,
// whoever owns it, and reports whether there was one. Nothing is asked of
// the provider: the asset is already deleted there. resourceType, when
// given, must match, since Cloudinary public IDs are unique per resource
// type only.
func (s *Service) removeRecord(ctx context.Context, provider, providerID, resourceType string) (bool, error) {
	f, err := s.Store.FindAsset(ctx, provider, providerID)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, storeError(err)
	case resourceType != "" && resourceType != f.ResourceType:
		return false, nil
	}
	err = s.Store.DeleteFile(ctx, f.UserID, f.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		// Deleted in between, by the user or another delivery.
		return false, nil
	case err != nil:
		return false, storeError(err)
	}
	return true, nil
}

// deliver runs handle once per distinct body: a body handled before is a
// repeat. The delivery is remembered only after handle succeeded (see the
// top of this file).
func (s *Service) deliver(ctx context.Context, provider string, body []byte, handle func() (WebhookResult, error)) (WebhookResult, error) {
	key := sha256.Sum256(body)
	seen, err := s.Store.WebhookDelivered(ctx, provider, key[:])
	if err != nil {
		return WebhookResult{}, storeError(err)
	}
	if seen {
		return WebhookResult{Outcome: WebhookRepeat, Reason: "this notification was delivered before"}, nil
	}
	res, err := handle()
	if err != nil {
		return WebhookResult{}, err
	}
	now := time.Now()
	if err := s.Store.RecordWebhook(ctx, provider, key[:], now); err != nil {
		// What handle did stands; the provider's retry will find it and
		// answer as a repeat.
		return WebhookResult{}, storeError(err)
	}
	if mathrand.IntN(webhookPruneOdds) == 0 {
		// Housekeeping: a failure here only leaves old rows for the next
		// prune, and must not fail a delivery that was handled.
		_, _ = s.Store.PruneWebhooks(ctx, now.Add(-WebhookRetention))
	}
	return res, nil
}

// decodeNotification reads a verified body leniently: unknown fields are
// fine, but it must be a JSON object.
func decodeNotification(body []byte, dst any) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil || probe == nil {
		return apierror.InvalidRequest("the notification body is not a JSON object")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return apierror.Wrap(apierror.CodeInvalidRequest, err, "the notification body has a field of an unexpected type")
	}
	return nil
}
