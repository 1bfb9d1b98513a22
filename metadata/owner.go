package metadata

import (
	"encoding/base32"
	"regexp"
	"strings"
)

// MaxUserIDBytes bounds the user id so that the public IDs built from it stay
// under Cloudinary's 255-character limit.
const MaxUserIDBytes = 128

// plainSegment is the set of user ids used verbatim as their own segment. It
// starts with a letter or digit, so it never collides with an encoded segment,
// which starts with '_'.
var plainSegment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

var segmentEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// UserSegment is the path-safe, deterministic and reversible folder name of a
// user in public IDs: the id itself when it is made of letters, digits, '_'
// and '-' (64 at most, starting with a letter or digit), otherwise '_' and
// the lower-case unpadded base32 of its UTF-8 bytes. Reversible, so that a
// webhook can name the owner from the public ID alone.
func UserSegment(userID string) string {
	if plainSegment.MatchString(userID) {
		return userID
	}
	return "_" + strings.ToLower(segmentEncoding.EncodeToString([]byte(userID)))
}

// UserFromSegment inverts UserSegment.
func UserFromSegment(segment string) (string, bool) {
	if plainSegment.MatchString(segment) {
		return segment, true
	}
	enc, ok := strings.CutPrefix(segment, "_")
	if !ok || enc == "" || enc != strings.ToLower(enc) {
		return "", false
	}
	raw, err := segmentEncoding.DecodeString(strings.ToUpper(enc))
	if err != nil || len(raw) == 0 || len(raw) > MaxUserIDBytes {
		return "", false
	}
	user := string(raw)
	// Only the canonical form counts, so one user has exactly one segment.
	if UserSegment(user) != segment {
		return "", false
	}
	return user, true
}
