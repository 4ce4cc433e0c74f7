package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
)

type fakeProbe map[domain.Upstream]app.Readiness

func (f fakeProbe) Ready(_ context.Context, u domain.Upstream) app.Readiness { return f[u] }

type fakeBroker struct{ err error }

func (f fakeBroker) Ping(context.Context) error { return f.err }

var ready = app.Readiness{Reachable: true, OK: true, Checks: map[string]string{"db": "connected"}}

func health(probe fakeProbe, broker app.BrokerProbe, deployed ...domain.Upstream) app.CheckHealthHandler {
	return app.NewCheckHealthHandler(app.HealthSources{Deployed: deployed, Services: probe, Broker: broker, Timeout: time.Second, CacheFor: time.Second, Now: time.Now})
}

// check is the handler's report; the handler never fails.
func check(t *testing.T, h app.CheckHealthHandler) app.HealthReport {
	t.Helper()
	r, err := h.Handle(context.Background(), app.CheckHealth{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHealth_AllUp(t *testing.T) {
	vm := app.Readiness{Reachable: true, OK: true, Checks: map[string]string{"db": "connected", "libvirt": "connected"}}
	r := check(t, health(fakeProbe{domain.UpstreamAuth: ready, domain.UpstreamVM: vm}, fakeBroker{}, domain.UpstreamAuth, domain.UpstreamVM))
	if !r.OK || r.DB != "connected" || r.Libvirt != "connected" || r.Kafka != "connected" || r.Services[domain.UpstreamVM] != "ok" {
		t.Fatalf("%+v", r)
	}
}

func TestHealth_OnlyReportsWhatIsDeployed(t *testing.T) {
	r := check(t, health(fakeProbe{domain.UpstreamAuth: ready}, nil, domain.UpstreamAuth))
	if !r.OK || r.Libvirt != "" || r.Kafka != "" || len(r.Services) != 1 {
		t.Fatalf("%+v", r)
	}
}

func TestHealth_DegradedParts(t *testing.T) {
	cases := map[string]struct {
		probe  fakeProbe
		broker app.BrokerProbe
		check  func(app.HealthReport) bool
	}{
		"service unreachable": {fakeProbe{}, nil, func(r app.HealthReport) bool {
			return r.Services[domain.UpstreamAuth] == "down" && r.DB == "disconnected"
		}},
		"database down": {fakeProbe{domain.UpstreamAuth: {Reachable: true, Checks: map[string]string{"db": "disconnected"}}}, nil, func(r app.HealthReport) bool {
			return r.DB == "disconnected" && r.Services[domain.UpstreamAuth] == "down"
		}},
		"broker down": {fakeProbe{domain.UpstreamAuth: ready}, fakeBroker{errors.New("refused")}, func(r app.HealthReport) bool {
			return r.Kafka == "disconnected" && r.Services[domain.UpstreamAuth] == "ok"
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := check(t, health(tc.probe, tc.broker, domain.UpstreamAuth))
			if r.OK || !tc.check(r) {
				t.Fatalf("%+v", r)
			}
		})
	}
}

func TestHealth_CachesBriefly(t *testing.T) {
	probe := fakeProbe{domain.UpstreamAuth: ready}
	h := health(probe, nil, domain.UpstreamAuth)
	check(t, h)
	probe[domain.UpstreamAuth] = app.Readiness{}
	if r := check(t, h); !r.OK {
		t.Fatal("second call within the cache window probed again")
	}
}
