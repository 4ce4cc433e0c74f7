// Package service wires quota-service's adapters, use cases, background loops and HTTP port; main runs
// it (Run) and the component tests build it the same way (New).
package service

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/libs/revocation"
	"limen/libs/telemetry"
	"limen/libs/web"
	"limen/quota-service/internal/adapters/authclient"
	"limen/quota-service/internal/adapters/kafka"
	"limen/quota-service/internal/adapters/postgres"
	"limen/quota-service/internal/app"
	"limen/quota-service/internal/domain"
	porthttp "limen/quota-service/internal/ports/http"
	"limen/quota-service/migrations"
)

// Name is the service's name in logs, traces and metrics.
const Name = "quota-service"

// Retention is how long ended reservations and deleted VMs are kept: a reservation key repeated
// within it counts once, and a late report of a deleted VM counts nothing.
const Retention = 24 * time.Hour

// Config is quota-service's environment: the settings every service shares, and its own.
type Config struct {
	contract.Settings
	DatabaseURL    string   `env:"DATABASE_URL,required" validate:"required"`
	KafkaBrokers   []string `env:"KAFKA_BROKERS,required" validate:"required,min=1,dive,hostname_port"`
	InternalToken  string   `env:"LIMEN_INTERNAL_TOKEN,required" validate:"required"`
	AuthServiceURL string   `env:"AUTH_SERVICE_URL" envDefault:"http://127.0.0.1:18081" validate:"required,http_url"`
	// The limits a user starts with; an admin changes them per user.
	MaxVMs       int `env:"LIMEN_QUOTA_MAX_VMS" envDefault:"10"`
	MaxCPU       int `env:"LIMEN_QUOTA_MAX_CPU" envDefault:"16"`
	MaxMemoryMiB int `env:"LIMEN_QUOTA_MAX_MEMORY" envDefault:"32768"`
	// ReservationTTL is how long a reservation holds its growth without a commit or release; longer
	// than any change takes (the gateway gives vm-service 150 s).
	ReservationTTL time.Duration `env:"LIMEN_QUOTA_RESERVATION_TTL" envDefault:"5m" validate:"gt=0"`
	// ReconcileInterval is how often expired reservations are freed and usage is checked against
	// the VMs.
	ReconcileInterval time.Duration `env:"LIMEN_QUOTA_RECONCILE_INTERVAL" envDefault:"30s" validate:"gt=0"`
	TrustedProxies    []string      `env:"LIMEN_TRUSTED_PROXIES" envDefault:"127.0.0.1,::1"`
}

// Defaults are the limits a user's quota starts with.
func (c Config) Defaults() domain.Resources {
	return domain.Resources{VMs: c.MaxVMs, CPU: c.MaxCPU, MemoryMiB: c.MaxMemoryMiB}
}

// Run is quota-service's process: it opens the database (migrated) and serves until ctx ends.
func Run(ctx context.Context, cfg Config, env process.Env) error {
	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "quota", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()
	return process.Serve(ctx, cfg.Addr(Name), cfg.DrainTimeout, env.Log, func(ctx context.Context) (*Service, error) {
		return New(ctx, cfg, pool, env.Log, env.Telemetry)
	})
}

// Service is quota-service assembled: its HTTP app, the readers of the VM and user events and the
// periodic reconciliation.
type Service struct {
	app       *fiber.App
	follower  *revocation.Follower
	vmEvents  *kafka.VMEvents
	reconcile app.ReconcileHandler
	every     time.Duration
	log       *slog.Logger
	metrics   metrics
}

// New builds the service over an open pool (migrated by the caller).
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, log *slog.Logger, tel *telemetry.Telemetry) (*Service, error) {
	defaults := cfg.Defaults()
	if err := domain.ValidDefaults(defaults); err != nil {
		return nil, errors.New("LIMEN_QUOTA_MAX_VMS, LIMEN_QUOTA_MAX_CPU, LIMEN_QUOTA_MAX_MEMORY: " + err.Error())
	}
	revoked := revocation.NewList()
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience, Revocations: revoked})
	if err != nil {
		return nil, err
	}
	store := postgres.New(pool, defaults)
	users := authclient.New(cfg.AuthServiceURL, cfg.InternalToken)
	now := func() time.Time { return time.Now().UTC() }
	forget := app.ForgetUserHandler{Upkeep: store}
	application := app.Application{
		Commands: app.Commands{
			SetQuota:     app.SetQuotaHandler{Quotas: store, Users: users},
			Reserve:      app.ReserveHandler{Reservations: store, Deletions: revoked, TTL: cfg.ReservationTTL},
			Commit:       app.CommitHandler{Reservations: store, Log: log},
			Release:      app.ReleaseHandler{Reservations: store},
			ReleaseVM:    app.ReleaseVMHandler{VMs: store},
			ApplyVMEvent: app.ApplyVMEventHandler{VMs: store, Deletions: revoked, ForgetUser: forget},
			ForgetUser:   forget,
			Reconcile:    app.ReconcileHandler{Upkeep: store, Deletions: revoked, Retention: Retention, Now: now},
		},
		Queries: app.Queries{
			GetQuota:   app.GetQuotaHandler{Quotas: store, Users: users},
			ListQuotas: app.ListQuotasHandler{Quotas: store},
		},
	}

	follower := revocation.NewFollower(cfg.KafkaBrokers, revoked, log)
	background := context.WithoutCancel(ctx)
	revoked.Subscribe(func(userID int64) {
		if revoked.Deleted(userID) {
			go func() {
				// A failure is repaired by the next reconciliation, which forgets deleted users.
				if err := application.Commands.ForgetUser.Handle(background, app.ForgetUser{UserID: userID}); err != nil {
					log.Warn("removing the quota of a deleted user", "user_id", userID, "err", err)
				}
			}()
		}
	})

	fiberApp := web.NewApp(web.AppConfig{Service: Name, Logger: log, Telemetry: tel, TrustedProxies: cfg.TrustedProxies,
		Checks: map[string]web.Check{"db": pgdb.Ping(pool), "revocations": follower.Ready}})
	porthttp.Mount(fiberApp, application, porthttp.Config{Verifier: verifier, InternalToken: cfg.InternalToken})

	return &Service{
		app:      fiberApp,
		follower: follower,
		vmEvents: &kafka.VMEvents{Brokers: cfg.KafkaBrokers, Log: log, Apply: func(ctx context.Context, e app.ApplyVMEvent) error {
			return application.Commands.ApplyVMEvent.Handle(ctx, e)
		}},
		reconcile: application.Commands.Reconcile,
		every:     cfg.ReconcileInterval,
		log:       log,
		metrics:   newMetrics(log),
	}, nil
}

// App is the service's HTTP app.
func (s *Service) App() *fiber.App { return s.app }

// Run follows the user and VM events and reconciles every interval until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.follower.Run(ctx) })
	wg.Go(func() { _ = s.vmEvents.Run(ctx) })
	wg.Go(func() { s.reconcileLoop(ctx) })
	wg.Wait()
	return nil
}

func (s *Service) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r, err := s.reconcile.Handle(ctx, app.Reconcile{})
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "reconciliation failed; trying again at the next interval", "err", err)
		}
		s.record(ctx, r)
	}
}

// record counts and logs what a reconciliation changed.
func (s *Service) record(ctx context.Context, r app.Reconciliation) {
	if r.Expired > 0 {
		s.metrics.expired.Add(ctx, int64(r.Expired))
		s.log.InfoContext(ctx, "reservations expired (neither committed nor released in time); their holds are freed", "count", r.Expired)
	}
	for _, d := range r.Drifts {
		s.metrics.drift.Add(ctx, 1)
		s.log.WarnContext(ctx, "usage disagreed with the VMs and pending reservations; repaired", "user_id", d.UserID,
			"was_vms", d.Was.VMs, "was_cpu", d.Was.CPU, "was_memory", d.Was.MemoryMiB,
			"now_vms", d.Now.VMs, "now_cpu", d.Now.CPU, "now_memory", d.Now.MemoryMiB)
	}
	for _, id := range r.Forgotten {
		s.log.InfoContext(ctx, "removed the quota of a deleted user", "user_id", id)
	}
}

// metrics are the reconciliation's counters, exported on /metrics.
type metrics struct {
	drift   metric.Int64Counter
	expired metric.Int64Counter
}

func newMetrics(log *slog.Logger) metrics {
	meter := otel.Meter("limen/quota-service")
	drift, err := meter.Int64Counter("limen.quota.drift.repairs",
		metric.WithDescription("Quotas whose usage disagreed with their VMs and pending reservations, repaired by the periodic check."))
	if err != nil {
		log.Warn("metric limen.quota.drift.repairs unavailable", "err", err)
	}
	expired, err := meter.Int64Counter("limen.quota.reservations.expired",
		metric.WithDescription("Reservations neither committed nor released in time, whose holds were freed."))
	if err != nil {
		log.Warn("metric limen.quota.reservations.expired unavailable", "err", err)
	}
	return metrics{drift: drift, expired: expired}
}
