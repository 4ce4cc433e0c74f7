// Package app holds the gateway's use cases and the ports they need.
package app

import (
	"context"
	"sync"
	"time"

	"limen/gateway/internal/domain"
)

// Readiness is what one service's /readyz said; Reachable is false when it did not answer at all.
type Readiness struct {
	Reachable bool
	OK        bool
	// Checks maps a dependency ("db", "libvirt", ...) to "connected" or "disconnected".
	Checks map[string]string
}

// ServiceProbe asks a deployed service whether it is ready.
type ServiceProbe interface {
	Ready(ctx context.Context, upstream domain.Upstream) Readiness
}

// BrokerProbe checks that the Kafka brokers answer.
type BrokerProbe interface {
	Ping(ctx context.Context) error
}

// HealthReport is the aggregated health; empty Libvirt or Kafka means no deployed part reports it.
type HealthReport struct {
	OK       bool
	Time     time.Time
	DB       string
	Libvirt  string
	Kafka    string
	Services map[domain.Upstream]string
}

const (
	connected    = "connected"
	disconnected = "disconnected"
)

// Health aggregates the readiness of the deployed services and the broker. Results are reused for
// CacheFor so that a flood of health checks does not fan out to every service.
type Health struct {
	Deployed []domain.Upstream
	Services ServiceProbe
	// Broker is nil when no brokers are configured.
	Broker   BrokerProbe
	Timeout  time.Duration
	CacheFor time.Duration
	Now      func() time.Time

	mu     sync.Mutex
	cached *HealthReport
}

func (h *Health) Handle(ctx context.Context) HealthReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.Now()
	if h.cached != nil && now.Sub(h.cached.Time) < h.CacheFor {
		return *h.cached
	}
	report := h.check(ctx, now)
	h.cached = &report
	return report
}

func (h *Health) check(ctx context.Context, now time.Time) HealthReport {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	results := make([]Readiness, len(h.Deployed))
	var brokerErr error
	var wg sync.WaitGroup
	for i, u := range h.Deployed {
		wg.Go(func() { results[i] = h.Services.Ready(ctx, u) })
	}
	if h.Broker != nil {
		wg.Go(func() { brokerErr = h.Broker.Ping(ctx) })
	}
	wg.Wait()

	report := HealthReport{OK: true, Time: now, DB: connected, Services: map[domain.Upstream]string{}}
	for i, u := range h.Deployed {
		r := results[i]
		report.Services[u] = "ok"
		if !r.Reachable || !r.OK {
			report.Services[u], report.OK = "down", false
		}
		if !r.Reachable || r.Checks["db"] != connected {
			report.DB = disconnected
		}
		if state, ok := r.Checks["libvirt"]; ok && report.Libvirt != disconnected {
			report.Libvirt = state
		}
	}
	if h.Broker != nil {
		report.Kafka = connected
		if brokerErr != nil {
			report.Kafka, report.OK = disconnected, false
		}
	}
	if report.DB != connected || report.Libvirt == disconnected {
		report.OK = false
	}
	return report
}
