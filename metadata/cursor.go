package metadata

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

var errBadCursor = errors.New("cursor is not one this broker issued")

// EncodeCursor turns a keyset position into the opaque text clients pass back.
// It carries the position itself, not an offset, so it stays valid while
// rows are added.
func EncodeCursor(c Cursor) string {
	if c.IsZero() {
		return ""
	}
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor parses a cursor from EncodeCursor; "" is the first page.
func DecodeCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, errBadCursor
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return Cursor{}, errBadCursor
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return Cursor{}, errBadCursor
	}
	parsed, err := uuid.Parse(id)
	if err != nil {
		return Cursor{}, errBadCursor
	}
	return Cursor{CreatedAt: time.UnixMicro(us).UTC(), ID: parsed.String()}, nil
}
