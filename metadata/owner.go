package metadata

import (
	"encoding/base32"
	"strings"
)

// MaxUserIDBytes bounds the user id so that the public IDs built from it stay
// under Cloudinary's 255-character limit.
const MaxUserIDBytes = 128

// plainSegment reports whether id is used verbatim as its own segment: 1 to
// 64 ASCII letters, digits, '_' and '-', starting with a letter or digit, so
// it never collides with an encoded segment, which starts with '_'. A loop
// rather than a regexp: it runs on every signature and every save.
func plainSegment(id string) bool {
	if len(id) == 0 || len(id) > 64 || !isASCIIAlnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !isASCIIAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

var segmentEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// UserSegment is the path-safe, deterministic and reversible folder name of a
// user in public IDs: the id itself when it is made of letters, digits, '_'
// and '-' (64 at most, starting with a letter or digit), otherwise '_' and
// the lower-case unpadded base32 of its UTF-8 bytes. Reversible, so that a
// webhook can name the owner from the public ID alone.
func UserSegment(userID string) string {
	if plainSegment(userID) {
		return userID
	}
	return "_" + strings.ToLower(segmentEncoding.EncodeToString([]byte(userID)))
}

// UserFromSegment inverts UserSegment.
func UserFromSegment(segment string) (string, bool) {
	if plainSegment(segment) {
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
