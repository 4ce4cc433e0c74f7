package argon2_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"limen/auth-service/internal/adapters/argon2"
	"limen/auth-service/internal/domain"
	"limen/libs/failure"
)

// gate is a hasher whose operations block until released, counting how many run at once.
type gate struct {
	release            chan struct{}
	running, most, ran atomic.Int32
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) run() {
	n := g.running.Add(1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-g.release
	g.running.Add(-1)
	g.ran.Add(1)
}

func (g *gate) Hash(context.Context, string) (string, error) { g.run(); return "h", nil }
func (g *gate) Verify(context.Context, string, string) (bool, error) {
	g.run()
	return true, nil
}

func TestBounded_RunsAtMostItsConcurrency(t *testing.T) {
	g := newGate()
	b := argon2.NewBounded(g, 3, time.Minute)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _ = b.Verify(context.Background(), "p", "h") })
	}
	for g.running.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // would a fourth start?
	close(g.release)
	wg.Wait()
	if g.most.Load() != 3 || g.ran.Load() != 20 {
		t.Fatalf("at most %d at once (want 3), %d ran (want 20)", g.most.Load(), g.ran.Load())
	}
}

func TestBounded_QueueTimeoutIsBusy(t *testing.T) {
	g := newGate()
	defer close(g.release)
	b := argon2.NewBounded(g, 1, 30*time.Millisecond)
	go func() { _, _ = b.Hash(context.Background(), "p") }()
	for g.running.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err := b.Hash(context.Background(), "p")
	if !errors.Is(err, domain.ErrBusy) || failure.KindOf(err) != failure.Unavailable {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond || waited > time.Second {
		t.Fatalf("waited %v for a slot, want about 30ms", waited)
	}
}

func TestBounded_WaitEndsWithTheCallersContext(t *testing.T) {
	g := newGate()
	defer close(g.release)
	b := argon2.NewBounded(g, 1, time.Minute)
	go func() { _, _ = b.Hash(context.Background(), "p") }()
	for g.running.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.Verify(ctx, "p", "h"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("kept waiting after the caller's context ended")
	}
	// A caller already gone does not start a hash even when a slot is free.
	free := argon2.NewBounded(g, 2, time.Minute)
	_, err := free.Hash(ctx, "p")
	if !errors.Is(err, context.DeadlineExceeded) || g.ran.Load() != 0 {
		t.Fatalf("got %v, %d ran", err, g.ran.Load())
	}
}

func TestDefaultConcurrency_IsBetween2And8(t *testing.T) {
	if n := argon2.DefaultConcurrency(); n < 2 || n > 8 {
		t.Fatalf("default concurrency %d", n)
	}
	if n := argon2.NewBounded(newGate(), 0, time.Second).Concurrency(); n != argon2.DefaultConcurrency() {
		t.Fatalf("0 gave %d", n)
	}
}
