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

// CheckHealth asks for the aggregated health of the gateway's dependencies (GET /api/health).
type CheckHealth struct{}

// HealthSources are what CheckHealthHandler asks.
type HealthSources struct {
	Deployed []domain.Upstream
	Services ServiceProbe
	// Broker is nil when no brokers are configured.
	Broker   BrokerProbe
	Timeout  time.Duration
	CacheFor time.Duration
	Now      func() time.Time
}

// CheckHealthHandler aggregates the readiness of the deployed services and the broker. Results are
// reused for CacheFor so that a flood of health checks does not fan out to every service.
type CheckHealthHandler struct {
	sources HealthSources
	cache   *healthCache
}

// healthCache is the last report, shared by every copy of the handler.
type healthCache struct {
	mu     sync.Mutex
	report *HealthReport
}

// NewCheckHealthHandler asks sources, with an empty cache.
func NewCheckHealthHandler(sources HealthSources) CheckHealthHandler {
	return CheckHealthHandler{sources: sources, cache: &healthCache{}}
}

// Handle never fails: a part that does not answer is reported down.
func (h CheckHealthHandler) Handle(ctx context.Context, _ CheckHealth) (HealthReport, error) {
	h.cache.mu.Lock()
	defer h.cache.mu.Unlock()
	now := h.sources.Now()
	if cached := h.cache.report; cached != nil && now.Sub(cached.Time) < h.sources.CacheFor {
		return *cached, nil
	}
	report := h.sources.check(ctx, now)
	h.cache.report = &report
	return report, nil
}

func (s HealthSources) check(ctx context.Context, now time.Time) HealthReport {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	results := make([]Readiness, len(s.Deployed))
	var brokerErr error
	var wg sync.WaitGroup
	for i, u := range s.Deployed {
		wg.Go(func() { results[i] = s.Services.Ready(ctx, u) })
	}
	if s.Broker != nil {
		wg.Go(func() { brokerErr = s.Broker.Ping(ctx) })
	}
	wg.Wait()

	report := HealthReport{OK: true, Time: now, DB: connected, Services: map[domain.Upstream]string{}}
	for i, u := range s.Deployed {
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
	if s.Broker != nil {
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
