// Package service wires media-service's adapters, use cases, outbox relay and HTTP port; Run (the
// process) and the component tests build the service the same way, through New.
package service

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/libs/revocation"
	"limen/libs/telemetry"
	"limen/libs/web"
	"limen/media-service/internal/adapters/libvirt"
	"limen/media-service/internal/adapters/postgres"
	"limen/media-service/internal/adapters/vmclient"
	"limen/media-service/internal/app"
	porthttp "limen/media-service/internal/ports/http"
	"limen/media-service/migrations"
)

// Name is the service's name in logs, traces and event sources.
const Name = "media-service"

// Config is media-service's environment: the settings every service shares, and its own.
type Config struct {
	contract.Settings
	DatabaseURL    string   `env:"DATABASE_URL,required" validate:"required"`
	KafkaBrokers   []string `env:"KAFKA_BROKERS,required" validate:"required,min=1,dive,hostname_port"`
	VMServiceURL   string   `env:"VM_SERVICE_URL" envDefault:"http://127.0.0.1:18082" validate:"required,http_url"`
	InternalToken  string   `env:"LIMEN_INTERNAL_TOKEN,required" validate:"required"`
	LibvirtURI     string   `env:"LIBVIRT_URI" envDefault:"qemu:///system" validate:"required"`
	LibvirtSocket  string   `env:"LIBVIRT_SOCKET"`
	ISODir         string   `env:"LIMEN_ISO_DIR" envDefault:"/var/lib/limen/isos" validate:"required"`
	ISOPool        string   `env:"LIMEN_ISO_POOL" envDefault:"limen-isos" validate:"required"`
	MaxUploadBytes int64    `env:"LIMEN_ISO_MAX_UPLOAD" envDefault:"17179869184" validate:"gt=0"`
	TrustedProxies []string `env:"LIMEN_TRUSTED_PROXIES" envDefault:"127.0.0.1,::1"`
}

// Run is media-service's process: it opens the database (applying the migrations) and the libvirt
// connection, and serves until ctx is done.
func Run(ctx context.Context, cfg Config, env process.Env) error {
	pool, err := outbox.Open(ctx, cfg.DatabaseURL, "media", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()

	conn := libvirtconn.New(libvirtconn.Config{URI: cfg.LibvirtURI, Socket: cfg.LibvirtSocket}, env.Log)
	return process.Serve(ctx, cfg.Addr(Name), cfg.DrainTimeout, env.Log, func(ctx context.Context) (*Service, error) {
		return New(ctx, cfg, pool, conn, env.Log, env.Telemetry)
	}, conn.Run)
}

// Service is media-service assembled: its HTTP app, the relay that publishes media events and the
// follower of auth-service's user changes that revokes tokens.
type Service struct {
	app      *fiber.App
	relay    *outbox.Relay
	follower *revocation.Follower
}

// New builds the service over an open pool (migrated by the caller) and a libvirt connection manager
// that the caller keeps running.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, conn *libvirtconn.Manager, log *slog.Logger, tel *telemetry.Telemetry) (*Service, error) {
	now := func() time.Time { return time.Now().UTC() }
	revoked := revocation.NewList()
	follower := revocation.NewFollower(cfg.KafkaBrokers, revoked, log)
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience, Revocations: revoked})
	if err != nil {
		return nil, err
	}
	if err := conn.WaitConnected(ctx); err != nil {
		return nil, err
	}
	library, err := libvirt.NewLibrary(conn.Client, libvirt.LibraryConfig{Pool: cfg.ISOPool, Dir: cfg.ISODir})
	if err != nil {
		return nil, err
	}
	drive := libvirt.NewDrive(conn.Client)
	vms := vmclient.New(cfg.VMServiceURL, cfg.InternalToken)
	history := postgres.NewHistory(pool, outbox.NewWriter(Name))

	fiberApp := web.NewApp(web.AppConfig{Service: Name, Logger: log, Telemetry: tel, TrustedProxies: cfg.TrustedProxies,
		// ISO uploads stream into the pool; every other request keeps the 1 MiB limit.
		StreamRequestBody: true, Upload: web.UploadRoute(fiber.MethodPost, "/api/vms/isos"),
		Checks: map[string]web.Check{"db": pgdb.Ping(pool), "libvirt": conn.Ready, "revocations": follower.Ready}})
	porthttp.Mount(fiberApp, app.Application{
		Commands: app.Commands{
			ChangeMedia: app.ChangeMediaHandler{VMs: vms, Library: library, Drive: drive, Claims: history, History: history, Now: now},
			UploadISO:   app.UploadISOHandler{Library: library, MaxBytes: cfg.MaxUploadBytes, MaxLabel: web.ByteSize(cfg.MaxUploadBytes)},
			DeleteISO:   app.DeleteISOHandler{Library: library, Drive: drive, Claims: history},
		},
		Queries: app.Queries{
			GetMedia: app.GetMediaHandler{VMs: vms, Drive: drive},
			ListISOs: app.ListISOsHandler{Library: library},
		},
	}, porthttp.Config{Verifier: verifier, InternalToken: cfg.InternalToken})
	return &Service{app: fiberApp, relay: outbox.NewRelay(pool, outbox.RelayConfig{Brokers: cfg.KafkaBrokers}, log), follower: follower}, nil
}

// App is the service's HTTP app.
func (s *Service) App() *fiber.App { return s.app }

// Run publishes media events and follows user changes until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	following := make(chan struct{})
	go func() { defer close(following); _ = s.follower.Run(ctx) }()
	err := s.relay.Run(ctx)
	<-following
	return errors.Join(err, s.relay.Close())
}
