package http_test

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"limen/libs/authn"
)

func TestZZHeap(t *testing.T) {
	if os.Getenv("ZZHEAP") == "" {
		t.Skip()
	}
	g := startLiveGateway(t, liveOptions{maxPerUser: 5000})
	tok := g.issuer.Token(t, userA, authn.RoleUser)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 1000; i++ {
		g.connect(t, tok)
	}
	time.Sleep(time.Second)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("heap inuse/socket %.1f KB, stack inuse/socket %.1f KB, goroutines %d", float64(after.HeapInuse-before.HeapInuse)/1000/1024, float64(after.StackInuse-before.StackInuse)/1000/1024, runtime.NumGoroutine())
	f, _ := os.Create("/tmp/prof/heap-idle.pprof")
	pprof.Lookup("heap").WriteTo(f, 0)
	f.Close()
}
