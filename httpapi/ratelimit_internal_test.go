package httpapi

import (
	"testing"
	"time"
)

func TestRateLimiterBucket(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(3, func() time.Time { return now })

	// The whole minute's allowance at once, then nothing.
	for i := range 3 {
		if ok, _ := l.allow(actionSign, "alice"); !ok {
			t.Fatalf("request %d of 3 refused", i+1)
		}
	}
	ok, wait := l.allow(actionSign, "alice")
	if ok || wait <= 0 || wait > 20*time.Second {
		t.Fatalf("4th request: ok=%v wait=%v, want refused with a wait of at most 20s (3/min)", ok, wait)
	}
	// A refusal takes no token: after the wait there is exactly one.
	if ok, _ := l.allow(actionSign, "alice"); ok {
		t.Fatalf("a refused request was let through on retry without waiting")
	}
	now = now.Add(wait)
	if ok, _ := l.allow(actionSign, "alice"); !ok {
		t.Fatalf("refused after waiting the advertised %v", wait)
	}
	if ok, _ := l.allow(actionSign, "alice"); ok {
		t.Fatalf("two requests went through on one refilled token")
	}

	// Other users and the other action have their own buckets.
	if ok, _ := l.allow(actionSign, "bob"); !ok {
		t.Errorf("bob was limited by alice's use")
	}
	if ok, _ := l.allow(actionSave, "alice"); !ok {
		t.Errorf("alice's saves were limited by her signing")
	}
}

func TestRateLimiterForgetsIdleUsers(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(60, func() time.Time { return now })
	for _, u := range []string{"a", "b", "c"} {
		l.allow(actionSign, u)
	}
	now = now.Add(30 * time.Second)
	l.allow(actionSign, "d")
	if len(l.buckets) != 4 {
		t.Fatalf("%d buckets before a minute passed, want 4", len(l.buckets))
	}
	// Past the minute a, b and c are full again (d too, by then): swept.
	now = now.Add(45 * time.Second)
	l.allow(actionSave, "e")
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after the sweep, want 1 (e's)", len(l.buckets))
	}
}
