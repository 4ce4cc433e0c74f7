// Package memtest checks that code streams instead of buffering: Pattern makes large bodies that cost
// no memory, and Watch measures how much the heap grows while they flow.
package memtest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pattern is a deterministic body of n bytes, generated as it is read.
func Pattern(n int64) io.Reader { return &pattern{left: n} }

// PatternSHA256 is the hex SHA-256 of Pattern(n).
func PatternSHA256(n int64) string {
	h := sha256.New()
	_, _ = io.CopyBuffer(h, Pattern(n), make([]byte, 64<<10))
	return hex.EncodeToString(h.Sum(nil))
}

type pattern struct{ left, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		x := uint64(p.off + int64(i))
		b[i] = byte(x*2654435761>>13) ^ byte(x>>9)
	}
	p.off += int64(len(b))
	p.left -= int64(len(b))
	return len(b), nil
}

// Heap samples HeapInuse every 2 ms from Watch until End.
type Heap struct {
	start runtime.MemStats
	peak  atomic.Uint64
	stop  chan struct{}
	done  sync.WaitGroup
}

// Watch starts sampling after a GC, so the baseline holds live data only.
func Watch() *Heap {
	runtime.GC()
	w := &Heap{stop: make(chan struct{})}
	runtime.ReadMemStats(&w.start)
	w.peak.Store(w.start.HeapInuse)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > w.peak.Load() {
					w.peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	return w
}

// End stops sampling and returns the peak HeapInuse growth over the baseline and the bytes allocated
// meanwhile (TotalAlloc), for the whole process.
func (w *Heap) End() (peakGrowth, allocated uint64) {
	close(w.stop)
	w.done.Wait()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	peak := max(w.peak.Load(), m.HeapInuse)
	return peak - w.start.HeapInuse, m.TotalAlloc - w.start.TotalAlloc
}
