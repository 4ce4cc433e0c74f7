package argon2

import (
	"context"
	"runtime"
	"time"

	"limen/auth-service/internal/domain"
)

// PasswordHasher is what Bounded wraps (app.PasswordHasher).
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	Verify(ctx context.Context, password, hash string) (bool, error)
}

// DefaultConcurrency is how many hashes may run at once unless configured (K): twice the CPUs, at
// least 2 and at most 8. Each argon2id hash holds Params.Memory (64 MiB by default) while it runs, so
// the hashes of the whole process hold at most K × 64 MiB live (512 MiB at K = 8), whatever the load.
// The process's memory is bounded by that plus its base (some 30 MiB) and the collector's slack: Go's
// collector (GOGC=100) lets the heap grow to about twice the live heap, and hashes that start during
// a collection come on top, so budget about 3 × K × 64 MiB + base with the defaults, or set
// GOMEMLIMIT to K × 64 MiB + base + some margin to hold it there (the limit is soft; the hashes are
// live). Measured on 2 CPUs (K = 4), a burst of 100 logins: peak RSS 610-680 MiB with the defaults,
// 360 MiB under a 352 MiB limit; without the bound the same burst took 6.4 GiB.
func DefaultConcurrency() int { return max(2, min(runtime.NumCPU()*2, 8)) }

// Bounded lets at most a fixed number of hashes and verifications run at once. Callers beyond it
// queue for up to a timeout, then fail with domain.ErrBusy (503 with Retry-After); a caller whose
// context ends while queued gets the context's error and costs nothing.
type Bounded struct {
	inner PasswordHasher
	slots chan struct{}
	wait  time.Duration
}

// NewBounded bounds inner to concurrency parallel operations (DefaultConcurrency when not positive),
// each waiting at most wait for a slot.
func NewBounded(inner PasswordHasher, concurrency int, wait time.Duration) *Bounded {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency()
	}
	return &Bounded{inner: inner, slots: make(chan struct{}, concurrency), wait: wait}
}

// Concurrency is how many operations may run at once.
func (b *Bounded) Concurrency() int { return cap(b.slots) }

func (b *Bounded) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // the caller has gone: do not start a hash for nobody
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-timer.C:
		return domain.ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Bounded) release() { <-b.slots }

func (b *Bounded) Hash(ctx context.Context, password string) (string, error) {
	if err := b.acquire(ctx); err != nil {
		return "", err
	}
	defer b.release()
	return b.inner.Hash(ctx, password)
}

func (b *Bounded) Verify(ctx context.Context, password, hash string) (bool, error) {
	if err := b.acquire(ctx); err != nil {
		return false, err
	}
	defer b.release()
	return b.inner.Verify(ctx, password, hash)
}
