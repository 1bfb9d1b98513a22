package metadata

import (
	"regexp"
	"strings"
	"testing"
)

// The hand-written matchers replaced these regexps on the request path;
// they must accept exactly what the regexps accepted.
var (
	wantPlainSegment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	wantForbidden    = regexp.MustCompile(`[?&#\\%<>+\x00-\x1f\x7f]`)
	wantFormat       = regexp.MustCompile(`^[A-Za-z0-9]{1,16}$`)
)

var matcherCorpus = []string{
	"", "a", "A", "0", "_", "-", "_a", "-a", "a_", "a-", "user_2f9a8b7c6d5e4f30", "bench-user-0",
	"a.b", "a b", "a/b", "é", "aé", "ﬁle", "a\x00", "a\x1f", "a\x7f", "a\u0085", "a\u00a0",
	strings.Repeat("a", 16), strings.Repeat("a", 17), strings.Repeat("a", 64), strings.Repeat("a", 65),
	"uploads/alice/k3j5h7g9", "uploads/alice/a?b", "x&y", "x#y", `x\y`, "x%y", "x<y", "x>y", "x+y",
	"png", "PNG", "jpeg2000", "tar.gz", "webp\n", "\xff", "a\xffb",
}

func checkMatchers(t *testing.T, s string) {
	t.Helper()
	if got, want := plainSegment(s), wantPlainSegment.MatchString(s); got != want {
		t.Errorf("plainSegment(%q) = %v, regexp says %v", s, got, want)
	}
	if got, want := forbiddenInPublicID(s), wantForbidden.MatchString(s); got != want {
		t.Errorf("forbiddenInPublicID(%q) = %v, regexp says %v", s, got, want)
	}
	if got, want := isFormat(s), wantFormat.MatchString(s); got != want {
		t.Errorf("isFormat(%q) = %v, regexp says %v", s, got, want)
	}
}

func TestMatchersAgreeWithRegexps(t *testing.T) {
	for _, s := range matcherCorpus {
		checkMatchers(t, s)
	}
	// Every single byte, alone and after a valid prefix.
	for b := range 256 {
		checkMatchers(t, string([]byte{byte(b)}))
		checkMatchers(t, "a"+string([]byte{byte(b)}))
	}
}

func FuzzMatchersAgreeWithRegexps(f *testing.F) {
	for _, s := range matcherCorpus {
		f.Add(s)
	}
	f.Fuzz(checkMatchers)
}
