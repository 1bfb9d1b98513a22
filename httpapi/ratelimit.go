package httpapi

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/brokerdev/broker/apierror"
	"github.com/brokerdev/broker/auth"
)

// The routes the rate limit and the save metrics single out.
const (
	routeGenerateSignature = "/generate-signature"
	routeSaveMetadata      = "/save-metadata"
	routeUpload            = "/upload"
)

// Rate-limited actions. Each has its own bucket per user, so a user
// allowed N a minute may sign N uploads and save N uploads a minute: one
// upload is one of each, and a burst of signing does not starve the saves
// that follow it.
const (
	actionSign = "sign"
	actionSave = "save"
)

// rateLimiter is a token bucket per (action, user): RATE_LIMIT_PER_MINUTE
// tokens, refilled evenly over a minute, so a user may burst up to the
// whole minute's allowance and then goes at the steady rate. The state is
// per process; behind N replicas a user gets up to N times the limit, which
// is what a per-replica limit is for: protecting this process, the
// provider quota it signs against, and the database.
type rateLimiter struct {
	perMinute int
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[bucketKey]*rate.Limiter
	lastSweep time.Time
}

type bucketKey struct{ action, user string }

func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{perMinute: perMinute, now: now, buckets: map[bucketKey]*rate.Limiter{}, lastSweep: now()}
}

// allow takes a token from the user's bucket for action. When there is
// none it takes nothing and says how long until there is one.
func (l *rateLimiter) allow(action, user string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	key := bucketKey{action, user}
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)
		l.buckets[key] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets, once a minute, the buckets that have refilled: a full
// bucket is what a new one would be, so memory follows the users active
// in the last minute, not every user ever seen.
func (l *rateLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.perMinute) {
			delete(l.buckets, k)
		}
	}
}

// rateLimit is the middleware for one action. It runs after
// authentication, since the bucket is the user's. A refused request gets
// 429 rate_limited with Retry-After in whole seconds, rounded up so that a
// client that waits that long finds a token.
func (s *server) rateLimit(action string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if s.limiter == nil {
			return next
		}
		return func(c echo.Context) error {
			ok, wait := s.limiter.allow(action, auth.UserID(c))
			if ok {
				return next(c)
			}
			s.Metrics.rateLimited.WithLabelValues(action).Inc()
			secs := int(math.Ceil(wait.Seconds()))
			if secs < 1 {
				secs = 1
			}
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return apierror.New(apierror.CodeRateLimited, "too many requests; try again in %d s", secs)
		}
	}
}
