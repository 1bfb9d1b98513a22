package httpapi

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/metadata"
)

// Provider notifications. No JWT: the provider's signature over the raw
// body is the authentication, checked in metadata before anything is
// decoded. A success is any 2xx to the providers, which then stop
// retrying; an error (401 forged or stale, 502 provider down, 503 database
// down with Retry-After) makes them deliver again later, except 401, which
// no retry can fix.

type webhookResponse struct {
	Success bool           `json:"success"`
	Outcome string         `json:"outcome"`
	Reason  string         `json:"reason,omitempty"`
	File    *metadata.File `json:"file,omitempty"`
	Removed int            `json:"removed,omitempty"`
}

func (s *server) cloudinaryWebhook(c echo.Context) error {
	body, err := readWebhookBody(c, s.JSONBodyLimit)
	if err != nil {
		return err
	}
	h := c.Request().Header
	res, err := s.Service.CloudinaryWebhook(c.Request().Context(), body, h.Get("X-Cld-Timestamp"), h.Get("X-Cld-Signature"))
	if err != nil {
		return err
	}
	return s.webhookAnswer(c, metadata.ProviderCloudinary, res)
}

func (s *server) uploadcareWebhook(c echo.Context) error {
	body, err := readWebhookBody(c, s.JSONBodyLimit)
	if err != nil {
		return err
	}
	res, err := s.Service.UploadcareWebhook(c.Request().Context(), body, c.Request().Header.Get("X-Uc-Signature"))
	if err != nil {
		return err
	}
	return s.webhookAnswer(c, metadata.ProviderUploadcare, res)
}

// readWebhookBody reads the raw body, byte for byte as signed: the
// signatures cover these exact bytes, so nothing may decode and re-encode
// them first. The Content-Type is not checked; the signature is what counts.
func readWebhookBody(c echo.Context, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, limit+1))
	if err != nil {
		return nil, apierror.Wrap(apierror.CodeInvalidRequest, err, "could not read the request body")
	}
	if int64(len(body)) > limit {
		return nil, apierror.New(apierror.CodePayloadTooLarge, "notification body is larger than %d bytes", limit)
	}
	return body, nil
}

// webhookAnswer is 201 when the notification created the record (as a
// first /save-metadata is), 200 otherwise. Ignored notifications are logged
// with their reason, since nobody else will see it; events the broker never
// acts on only at debug level, as every upload brings some.
func (s *server) webhookAnswer(c echo.Context, provider string, res metadata.WebhookResult) error {
	if res.Outcome == metadata.WebhookIgnored {
		level := slog.LevelInfo
		if res.Routine {
			level = slog.LevelDebug
		}
		s.Logger.Log(c.Request().Context(), level, "webhook ignored", "provider", provider, "reason", res.Reason,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	status := http.StatusOK
	if res.Outcome == metadata.WebhookCreated {
		status = http.StatusCreated
	}
	return c.JSON(status, webhookResponse{
		Success: true, Outcome: string(res.Outcome), Reason: res.Reason, File: res.File, Removed: res.Removed,
	})
}
