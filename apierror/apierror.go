// Package apierror is the broker's error vocabulary: a typed error that carries
// the HTTP status, the stable machine-readable code of the contract and a
// message that is safe to show to clients. Every layer returns these; only the
// HTTP layer turns them into responses.
package apierror

import (
	"errors"
	"fmt"
	"net/http"
)

// Stable codes of the contract (CONTRACT.md, "HTTP API").
const (
	CodeInvalidRequest      = "invalid_request"
	CodeUnauthorized        = "unauthorized"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeConflict            = "conflict"
	CodePayloadTooLarge     = "payload_too_large"
	CodeInvalidEvidence     = "invalid_evidence"
	CodeUploadNotFound      = "upload_not_found"
	CodeRateLimited         = "rate_limited"
	CodeProviderUnavailable = "provider_unavailable"
	CodeUnavailable         = "unavailable"
	CodeInternal            = "internal"
)

var statusByCode = map[string]int{
	CodeInvalidRequest:      http.StatusBadRequest,
	CodeUnauthorized:        http.StatusUnauthorized,
	CodeForbidden:           http.StatusForbidden,
	CodeNotFound:            http.StatusNotFound,
	CodeConflict:            http.StatusConflict,
	CodePayloadTooLarge:     http.StatusRequestEntityTooLarge,
	CodeInvalidEvidence:     http.StatusUnprocessableEntity,
	CodeUploadNotFound:      http.StatusUnprocessableEntity,
	CodeRateLimited:         http.StatusTooManyRequests,
	CodeProviderUnavailable: http.StatusBadGateway,
	CodeUnavailable:         http.StatusServiceUnavailable,
	CodeInternal:            http.StatusInternalServerError,
}

// Error is an error a client may see. Message is written for a person and
// never contains secrets; Err is the internal cause, logged but not shown.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status that goes with the code.
func (e *Error) Status() int {
	if s, ok := statusByCode[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// New builds an Error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an Error that keeps cause for logs and errors.Is.
func Wrap(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// Shorthands for the codes used most.
func InvalidRequest(format string, args ...any) *Error {
	return New(CodeInvalidRequest, format, args...)
}
func Unauthorized(format string, args ...any) *Error { return New(CodeUnauthorized, format, args...) }
func Forbidden(format string, args ...any) *Error    { return New(CodeForbidden, format, args...) }
func NotFound(format string, args ...any) *Error     { return New(CodeNotFound, format, args...) }

// As returns the *Error inside err, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// HasCode reports whether err carries the given code.
func HasCode(err error, code string) bool {
	e, ok := As(err)
	return ok && e.Code == code
}
