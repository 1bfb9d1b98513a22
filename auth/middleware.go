package auth

import (
	"context"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/brokerdev/broker/apierror"
)

// echoUserKey is where the middleware keeps the user id in an echo.Context.
const echoUserKey = "broker.auth.user"

type ctxKey struct{}

// WithUser returns a context carrying the verified user id. Code below the
// HTTP layer (the database's row-level security, for one) reads it with
// UserFromContext.
func WithUser(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, ctxKey{}, userID)
}

// UserFromContext returns the user id stored by WithUser, and whether there
// was one.
func UserFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(ctxKey{}).(string)
	return id, ok && id != ""
}

// UserID returns the verified user id the middleware stored ("" if none).
func UserID(c echo.Context) string {
	if id, ok := c.Get(echoUserKey).(string); ok && id != "" {
		return id
	}
	id, _ := UserFromContext(c.Request().Context())
	return id
}

// Middleware requires "Authorization: Bearer <token>". On success the user id
// is available from UserID(c) and from UserFromContext on the request's
// context. On failure it returns the *apierror.Error (unauthorized) with the
// WWW-Authenticate header already set (RFC 6750 §3); the HTTP layer's error
// handler writes the body.
func (v *Verifier) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			token, ok := bearerToken(c.Request().Header.Get(echo.HeaderAuthorization))
			if !ok {
				// No credentials at all: RFC 6750 §3.1 says to send no error code.
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Bearer")
				return apierror.Unauthorized("authentication required: send Authorization: Bearer <token>")
			}
			req := c.Request()
			user, err := v.Verify(req.Context(), token)
			if err != nil {
				e, ok := apierror.As(err)
				if !ok { // Verify promises *apierror.Error; stay safe if that ever changes.
					e = apierror.Wrap(apierror.CodeUnauthorized, err, "token is invalid")
				}
				c.Response().Header().Set(echo.HeaderWWWAuthenticate,
					`Bearer error="invalid_token", error_description="`+headerSafe(e.Message)+`"`)
				return e
			}
			c.Set(echoUserKey, user)
			c.SetRequest(req.WithContext(WithUser(req.Context(), user)))
			return next(c)
		}
	}
}

// bearerToken extracts the token of a Bearer Authorization header. The
// scheme is case-insensitive (RFC 7235 §2.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// headerSafe keeps only the characters RFC 6750 §3 allows in
// error_description (printable ASCII without '"' and '\').
func headerSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\' || r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
