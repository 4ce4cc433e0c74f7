package service_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"limen/libs/contract"
)

// BenchmarkReservations is quota-service under 64 concurrent clients, as vm-service would call it
// for creates, over its HTTP port and one Postgres: each client reserves a VM for its user (8 users,
// 8 clients each, 5 VMs allowed per user, so some reservations are refused), then commits it and
// deletes the VM, or releases it. It reports reservations per second (admitted or refused), every
// internal call per second, the reservations' p50 and p99, and overshoot: the times a user held
// more admitted reservations than their limit, seen by the clients (they count a reservation from
// its admission's answer until just before they free it, a span inside the one the server holds it)
// or by a watcher of the quotas table; it must be 0.
//
//	go test -run '^$' -bench Reservations -benchtime 20s ./quota-service/internal/service/
func BenchmarkReservations(b *testing.B) {
	const (
		clients = 64
		users   = 8
		limit   = 5
	)
	s := newStack(b)
	for u := range users {
		s.setLimits(int64(100+u), fmt.Sprintf(`"max_vms":%d`, limit))
	}
	held := make([]atomic.Int64, users)
	var overshoot, reserves, admitted, calls atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	var failures []string

	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var over int64
			if err := s.Pool.QueryRow(s.Ctx, `SELECT count(*) FROM quotas WHERE vms > max_vms`).Scan(&over); err == nil {
				overshoot.Add(over)
			}
		}
	}()

	// fasthttp's client, as wrk would be: the load generator shares the two cores with the service
	// and Postgres, and should take as little of them as it can.
	load := &fasthttp.Client{MaxConnsPerHost: clients}
	// post sends a call and says whether it answered want; what else it answered is kept.
	post := func(path string, body any, want int) bool {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI(s.base + path)
		req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+internalToken)
		if body != nil {
			b, _ := json.Marshal(body)
			req.Header.SetContentType("application/json")
			req.SetBody(b)
		}
		err := load.Do(req, resp)
		calls.Add(1)
		if err == nil && resp.StatusCode() == want {
			return true
		}
		mu.Lock()
		failures = append(failures, fmt.Sprintf("POST %s: %d %s %v", path, resp.StatusCode(), resp.Body(), err))
		mu.Unlock()
		return false
	}
	var next atomic.Int64
	b.SetParallelism((clients + 1) / 2) // GOMAXPROCS x this: 64 on 2 cores
	b.ResetTimer()
	cpuBefore, pgBefore := processCPU(b), postgresCPU(s)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		u := int(next.Add(1)) % users
		userID := int64(100 + u)
		var mine []time.Duration
		for i := 0; pb.Next(); i++ {
			vm := uuid.NewString()
			key := "create:" + vm
			t0 := time.Now()
			ok := post(contract.InternalReservationsRoute, contract.QuotaReserve{Key: key, UserID: userID, VMUUID: vm, VMs: 1, CPU: 1, Memory: 64}, http.StatusCreated)
			mine = append(mine, time.Since(t0))
			reserves.Add(1)
			if !ok {
				continue
			}
			admitted.Add(1)
			if held[u].Add(1) > limit {
				overshoot.Add(1)
			}
			if i%2 == 0 {
				held[u].Add(-1) // before the hold ends on the server, never after
				post(contract.InternalReservationReleasePath(key), nil, http.StatusOK)
				continue
			}
			post(contract.InternalReservationCommitPath(key), contract.QuotaCommit{CPU: 1, Memory: 64, Version: 1}, http.StatusOK)
			held[u].Add(-1)
			post(contract.InternalQuotaVMReleasePath(vm), contract.QuotaVMRelease{UserID: userID}, http.StatusNoContent)
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	cpu, pg := processCPU(b)-cpuBefore, postgresCPU(s)-pgBefore
	b.StopTimer()
	close(stop)
	<-watched
	s.checkInvariant()

	slices.Sort(latencies)
	quantile := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(reserves.Load())/elapsed.Seconds(), "reservations/s")
	b.ReportMetric(float64(calls.Load())/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(admitted.Load())/float64(max(reserves.Load(), 1)), "admitted/reservation")
	b.ReportMetric(quantile(0.5), "p50-ms")
	b.ReportMetric(quantile(0.99), "p99-ms")
	// CPU per reservation holds steadier than the rates on a machine whose two cores the load
	// generator shares with the service, Postgres and whatever else runs: the test process (service
	// and clients) and Postgres's processes apart.
	perReservation := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(reserves.Load(), 1)) }
	b.ReportMetric(perReservation(cpu), "process-cpu-µs/reservation")
	b.ReportMetric(perReservation(pg), "postgres-cpu-µs/reservation")
	b.ReportMetric(float64(overshoot.Load()), "overshoot")
	// Refusals (403 Quota exceeded) are answers as designed, not failures.
	var failed []string
	for _, f := range failures {
		if !strings.Contains(f, `"Quota exceeded: vms `) {
			failed = append(failed, f)
		}
	}
	b.ReportMetric(float64(len(failed)), "failures")
	if overshoot.Load() != 0 || len(failed) != 0 {
		b.Errorf("overshoot %d, %d failed calls: %q", overshoot.Load(), len(failed), failed[:min(len(failed), 5)])
	}
}

// processCPU is the CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the CPU time the test cluster's processes (backends and background workers) have
// used, from /proc.
func postgresCPU(s *stack) time.Duration {
	rows, err := s.Pool.Query(s.Ctx, `SELECT pid FROM pg_stat_activity`)
	if err != nil {
		s.t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		s.t.Fatal(err)
	}
	var ticks int64
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // ended meanwhile
		}
		// The fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		for _, f := range fields[11:13] {
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
