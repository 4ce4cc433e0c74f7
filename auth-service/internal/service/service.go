// Package service wires auth-service's adapters, use cases and HTTP port; main and the component
// tests build the service the same way.
package service

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/adapters/argon2"
	"limen/auth-service/internal/adapters/jwtsign"
	"limen/auth-service/internal/adapters/postgres"
	"limen/auth-service/internal/adapters/vmclient"
	"limen/auth-service/internal/app"
	porthttp "limen/auth-service/internal/ports/http"
	"limen/auth-service/migrations"
	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/libs/revocation"
	"limen/libs/telemetry"
	"limen/libs/web"
)

// Config is auth-service's environment: the settings every service shares, and its own.
type Config struct {
	contract.Settings
	DatabaseURL        string        `env:"DATABASE_URL,required" validate:"required"`
	DataDir            string        `env:"LIMEN_DATA_DIR" envDefault:"./.limen"`
	KeyDir             string        `env:"LIMEN_JWT_KEY_DIR"`
	AccessTTL          time.Duration `env:"LIMEN_ACCESS_TOKEN_TTL" envDefault:"1h" validate:"gt=0"`
	RefreshTTL         time.Duration `env:"LIMEN_REFRESH_TOKEN_TTL" envDefault:"168h" validate:"gt=0"`
	AutoApprove        bool          `env:"LIMEN_AUTO_APPROVE" envDefault:"false"`
	AdminUsername      string        `env:"LIMEN_ADMIN_USERNAME"`
	AdminPassword      string        `env:"LIMEN_ADMIN_PASSWORD"`
	MaxFailures        int           `env:"LIMEN_LOGIN_MAX_FAILURES" envDefault:"5" validate:"gt=0"`
	MaxFailuresPerIP   int           `env:"LIMEN_LOGIN_MAX_FAILURES_PER_IP" envDefault:"20" validate:"gt=0"`
	LoginLockout       time.Duration `env:"LIMEN_LOGIN_LOCKOUT" envDefault:"15m" validate:"gt=0"`
	CookieSecure       bool          `env:"LIMEN_COOKIE_SECURE" envDefault:"false"`
	TrustedProxies     []string      `env:"LIMEN_TRUSTED_PROXIES" envDefault:"127.0.0.1,::1"`
	KafkaBrokers       []string      `env:"KAFKA_BROKERS,required" validate:"required,min=1,dive,hostname_port"`
	VMServiceURL       string        `env:"VM_SERVICE_URL" validate:"omitempty,http_url"`
	InternalToken      string        `env:"LIMEN_INTERNAL_TOKEN"`
	PasswordHashParams argon2.Params `env:"-"`

	// Left 0 in a Config built in code, those below get their defaults from New (withDefaults), but
	// for RefreshReuseGrace, where 0 is no grace.

	// MaxFailuresPerAccount is the slower global brake per account (app.LoginPolicy); 0: 50.
	MaxFailuresPerAccount int `env:"LIMEN_LOGIN_MAX_FAILURES_PER_ACCOUNT" envDefault:"50" validate:"gt=0"`
	// RegisterMaxPerIP registrations per client address within RegisterWindow; 0: 10 per hour.
	RegisterMaxPerIP int           `env:"LIMEN_REGISTER_MAX_PER_IP" envDefault:"10" validate:"gt=0"`
	RegisterWindow   time.Duration `env:"LIMEN_REGISTER_WINDOW" envDefault:"1h" validate:"gt=0"`
	// HashConcurrency bounds parallel password hashes (argon2.Bounded); 0: argon2.DefaultConcurrency.
	HashConcurrency int `env:"LIMEN_HASH_CONCURRENCY" envDefault:"0" validate:"gte=0"`
	// HashQueueTimeout is how long a request waits for a hashing slot before 503; 0: 2s.
	HashQueueTimeout time.Duration `env:"LIMEN_HASH_QUEUE_TIMEOUT" envDefault:"2s" validate:"gt=0"`
	// RequestTimeout bounds registration, login and refresh (the gateway waits 10 s); 0: 10s.
	RequestTimeout time.Duration `env:"LIMEN_REQUEST_TIMEOUT" envDefault:"10s" validate:"gt=0"`
	// RefreshReuseGrace lets the client that rotated a refresh token present it again for this long
	// (app.RefreshHandler); 0: no grace.
	RefreshReuseGrace time.Duration `env:"LIMEN_REFRESH_REUSE_GRACE" envDefault:"10s" validate:"gte=0"`
}

// withDefaults fills the limits a Config built in code (the component tests) leaves at zero; the
// environment always sets them.
func withDefaults(cfg *Config) {
	if cfg.MaxFailuresPerAccount == 0 {
		cfg.MaxFailuresPerAccount = 50
	}
	if cfg.RegisterMaxPerIP == 0 {
		cfg.RegisterMaxPerIP = 10
	}
	if cfg.RegisterWindow == 0 {
		cfg.RegisterWindow = time.Hour
	}
	if cfg.HashQueueTimeout == 0 {
		cfg.HashQueueTimeout = 2 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
}

// logBootstrapAdmin says what start-up found under LIMEN_ADMIN_USERNAME; an existing account is never
// changed, which an operator who expects an admin there needs to know.
func logBootstrapAdmin(log *slog.Logger, r app.EnsureAdminResult) {
	attrs := []any{"username", r.User.Username, "role", string(r.User.Role), "approved", r.User.Approved}
	switch {
	case r.Created:
		log.Info("bootstrap admin created", attrs...)
	case r.User.IsActiveAdmin():
		log.Info("bootstrap admin exists; left unchanged", attrs...)
	default:
		log.Warn("LIMEN_ADMIN_USERNAME names an existing account that is not an active admin; left unchanged "+
			"(start-up never promotes, approves or resets an existing account)", attrs...)
	}
}

// KeyDirectory is LIMEN_JWT_KEY_DIR, or keys/ in the data dir.
func (c Config) KeyDirectory() string {
	if c.KeyDir != "" {
		return c.KeyDir
	}
	return filepath.Join(c.DataDir, "keys")
}

// Name is the service's name in logs, traces and event sources.
const Name = "auth-service"

// Service is auth-service assembled: its HTTP app, the relay that publishes user changes, and the
// follower that reads them back so that its own admin routes refuse revoked tokens like every
// other service.
type Service struct {
	app      *fiber.App
	relay    *outbox.Relay
	prune    app.PruneExpiredHandler
	log      *slog.Logger
	follower *revocation.Follower
}

// App is the service's HTTP app.
func (s *Service) App() *fiber.App { return s.app }

// Run publishes and follows user changes until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	var relayErr error
	var wg sync.WaitGroup
	wg.Go(func() { relayErr = s.relay.Run(ctx) })
	wg.Go(func() { _ = s.follower.Run(ctx) })
	wg.Go(func() { s.pruneLoop(ctx) })
	wg.Wait()
	if errors.Is(relayErr, context.Canceled) {
		relayErr = nil
	}
	return errors.Join(relayErr, s.relay.Close())
}

// pruneEvery is how often expired refresh tokens and throttle counters are deleted.
const pruneEvery = 10 * time.Minute

func (s *Service) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		if pruned, err := s.prune.Handle(ctx, app.PruneExpired{}); err != nil && ctx.Err() == nil {
			s.log.Warn("pruning expired rows", "err", err)
		} else if pruned.RefreshTokens+pruned.Counters > 0 {
			s.log.Info("pruned expired rows", "refresh_tokens", pruned.RefreshTokens, "login_throttle", pruned.Counters)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Run opens the database, applies auth-service's migrations and the outbox's, and serves until ctx
// is done.
func Run(ctx context.Context, cfg Config, env process.Env) error {
	pool, err := outbox.Open(ctx, cfg.DatabaseURL, "auth", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()
	return process.Serve(ctx, cfg.Addr(Name), cfg.DrainTimeout, env.Log, func(ctx context.Context) (*Service, error) {
		return New(ctx, cfg, pool, env.Log, env.Telemetry)
	})
}

// New builds the service over an open pool and ensures the bootstrap admin.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, log *slog.Logger, tel *telemetry.Telemetry) (*Service, error) {
	now := func() time.Time { return time.Now().UTC() }
	keys, err := jwtsign.Load(jwtsign.Config{Dir: cfg.KeyDirectory(), Issuer: cfg.Issuer, Audience: cfg.Audience, AccessTTL: cfg.AccessTTL})
	if err != nil {
		return nil, err
	}
	revoked := revocation.NewList()
	follower := revocation.NewFollower(cfg.KafkaBrokers, revoked, log)
	verifier, err := authn.NewStaticVerifier(keys.Keyfunc, authn.VerifierConfig{Issuer: cfg.Issuer, Audience: cfg.Audience, Revocations: revoked})
	if err != nil {
		return nil, err
	}
	params := cfg.PasswordHashParams
	if params.Memory == 0 {
		params = argon2.DefaultParams
	}
	withDefaults(&cfg)
	hasher := argon2.NewBounded(argon2.New(params), cfg.HashConcurrency, cfg.HashQueueTimeout)
	log.Info("password hashing bounded", "concurrency", hasher.Concurrency(),
		"memory_bound_mib", hasher.Concurrency()*int(params.Memory)/1024, "queue_timeout", cfg.HashQueueTimeout.String())
	application, err := newApplication(ctx, cfg, pool, keys, hasher, now)
	if err != nil {
		return nil, err
	}

	if cfg.AdminUsername != "" && cfg.AdminPassword != "" {
		bootstrap, err := application.Commands.EnsureAdmin.Handle(ctx, app.EnsureAdmin{Username: cfg.AdminUsername, Password: cfg.AdminPassword})
		if err != nil {
			return nil, err
		}
		logBootstrapAdmin(log, bootstrap)
	}

	fiberApp := web.NewApp(web.AppConfig{Service: Name, Logger: log, Telemetry: tel,
		Checks: map[string]web.Check{"db": pgdb.Ping(pool), "revocations": follower.Ready}, TrustedProxies: cfg.TrustedProxies})
	porthttp.Mount(fiberApp, application, porthttp.Config{JWKS: keys.JWKS(), Verifier: verifier, RefreshTTL: cfg.RefreshTTL,
		CookieSecure: cfg.CookieSecure, RequestTimeout: cfg.RequestTimeout, Now: now, InternalToken: cfg.InternalToken})
	relay := outbox.NewRelay(pool, outbox.RelayConfig{Brokers: cfg.KafkaBrokers}, log)
	return &Service{app: fiberApp, relay: relay, follower: follower, prune: application.Commands.PruneExpired, log: log}, nil
}

// newApplication builds every use case over the Postgres adapters, the signing keys and the hasher.
func newApplication(ctx context.Context, cfg Config, pool *pgxpool.Pool, keys *jwtsign.KeySet, hasher app.PasswordHasher,
	now app.Clock) (app.Application, error) {
	throttle := postgres.NewThrottle(pool)
	events := outbox.NewWriter(Name)
	users, tokens := postgres.NewUsers(pool, events), postgres.NewRefreshTokens(pool, events)
	var vms interface { // no vm-service: nobody owns VMs
		app.OwnedVMs
		app.VMUsage
		app.UserVMs
	}
	if cfg.VMServiceURL != "" {
		vms = vmclient.New(cfg.VMServiceURL, cfg.InternalToken)
	}
	login, err := app.NewLoginHandler(ctx, users, hasher, throttle,
		app.LoginPolicy{MaxPerAccountAndIP: cfg.MaxFailures, MaxPerAccount: cfg.MaxFailuresPerAccount, MaxPerIP: cfg.MaxFailuresPerIP, Window: cfg.LoginLockout},
		keys, tokens, cfg.RefreshTTL, now)
	if err != nil {
		return app.Application{}, err
	}
	currentUser := app.CurrentUserHandler{Users: users}
	return app.Application{
		Commands: app.Commands{
			Register: app.RegisterHandler{Users: users, Hasher: hasher, Throttle: throttle, AutoApprove: cfg.AutoApprove, Now: now,
				Policy: app.RegisterPolicy{MaxPerIP: cfg.RegisterMaxPerIP, Window: cfg.RegisterWindow}},
			Login:        login,
			Refresh:      app.NewRefreshHandler(users, keys, tokens, cfg.RefreshTTL, cfg.RefreshReuseGrace, now),
			Logout:       app.LogoutHandler{Tokens: tokens, Now: now},
			ApproveUser:  app.ApproveUserHandler{Users: users, Tokens: tokens, Now: now},
			ChangeRole:   app.ChangeRoleHandler{Users: users, Now: now},
			DeleteUser:   app.DeleteUserHandler{Users: users, VMs: vms},
			EnsureAdmin:  app.EnsureAdminHandler{Users: users, Hasher: hasher, Now: now},
			PruneExpired: app.PruneExpiredHandler{Tokens: tokens, Counters: throttle, LongestWindow: max(cfg.LoginLockout, cfg.RegisterWindow), Now: now},
		},
		Queries: app.Queries{
			CurrentUser:  currentUser,
			CurrentAdmin: app.CurrentAdminHandler{CurrentUser: currentUser},
			ListUsers:    app.ListUsersHandler{Users: users, VMs: vms},
			GetUser:      app.GetUserHandler{Users: users, VMs: vms},
			FindUser:     app.FindUserHandler{Users: users},
		},
	}, nil
}
