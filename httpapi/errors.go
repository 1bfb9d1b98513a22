package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/metadata"
)

// errorBody is the contract's error shape.
type errorBody struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
	Code    string `json:"code"`
}

// retryAfterSeconds is what 503 answers suggest; the database is usually
// back (or failed over) within seconds.
const retryAfterSeconds = "5"

// handleError is Echo's error handler: every error leaves as the contract's
// JSON body with its stable code. Anything not classified is a bug: 500,
// logged with the request id, with no internals in the body.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := s.classify(err, c)
	h := c.Response().Header()
	switch body.Code {
	case apierror.CodeUnavailable, apierror.CodeRateLimited:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", retryAfterSeconds)
		}
	case apierror.CodeUnauthorized:
		if h.Get(echo.HeaderWWWAuthenticate) == "" {
			h.Set(echo.HeaderWWWAuthenticate, "Bearer")
		}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

func (s *server) classify(err error, c echo.Context) (int, errorBody) {
	if errors.Is(err, metadata.ErrUnavailable) {
		if _, ok := apierror.As(err); !ok {
			err = unavailable(err)
		}
	}
	if e, ok := apierror.As(err); ok {
		if e.Code == apierror.CodeInternal {
			s.logInternal(c, err)
		}
		return e.Status(), errorBody{Error: e.Message, Code: e.Code}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return http.StatusNotFound, errorBody{Error: "no such endpoint", Code: apierror.CodeNotFound}
		case http.StatusMethodNotAllowed:
			return http.StatusMethodNotAllowed, errorBody{Error: "method not allowed on this endpoint", Code: apierror.CodeInvalidRequest}
		case http.StatusRequestEntityTooLarge:
			return http.StatusRequestEntityTooLarge, errorBody{Error: "request body is too large", Code: apierror.CodePayloadTooLarge}
		case http.StatusUnauthorized:
			return http.StatusUnauthorized, errorBody{Error: "authentication required", Code: apierror.CodeUnauthorized}
		case http.StatusTooManyRequests:
			return http.StatusTooManyRequests, errorBody{Error: "too many requests", Code: apierror.CodeRateLimited}
		}
		if he.Code >= 400 && he.Code < 500 {
			return http.StatusBadRequest, errorBody{Error: "bad request", Code: apierror.CodeInvalidRequest}
		}
	}
	s.logInternal(c, err)
	return http.StatusInternalServerError, errorBody{Error: "internal error; it has been logged", Code: apierror.CodeInternal}
}

func (s *server) logInternal(c echo.Context, err error) {
	s.Logger.Error("internal error", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "route", c.Path(), "error", err)
}

func unavailable(err error) error {
	return apierror.Wrap(apierror.CodeUnavailable, err, "the database is unavailable; try again shortly")
}
