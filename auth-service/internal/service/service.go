// Package service wires auth-service's adapters, use cases and HTTP port; main and the component
// tests build the service the same way.
package service

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/adapters/argon2"
	"limen/auth-service/internal/adapters/jwtsign"
	"limen/auth-service/internal/adapters/postgres"
	"limen/auth-service/internal/app"
	porthttp "limen/auth-service/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/pgdb"
	"limen/libs/telemetry"
	"limen/libs/web"
)

// Config is auth-service's environment.
type Config struct {
	ListenAddr         string        `env:"LISTEN_ADDR" envDefault:"127.0.0.1:18081" validate:"hostname_port"`
	DatabaseURL        string        `env:"DATABASE_URL,required" validate:"required"`
	LogLevel           string        `env:"LOG_LEVEL" envDefault:"info" validate:"oneof=debug info warn error"`
	DataDir            string        `env:"LIMEN_DATA_DIR" envDefault:"./.limen"`
	KeyDir             string        `env:"LIMEN_JWT_KEY_DIR"`
	Issuer             string        `env:"LIMEN_JWT_ISSUER" envDefault:"limen" validate:"required"`
	Audience           string        `env:"LIMEN_JWT_AUDIENCE" envDefault:"limen-api" validate:"required"`
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
	DrainTimeout       time.Duration `env:"LIMEN_DRAIN_TIMEOUT" envDefault:"20s" validate:"gt=0"`
	PasswordHashParams argon2.Params `env:"-"`
}

// KeyDirectory is LIMEN_JWT_KEY_DIR, or keys/ in the data dir.
func (c Config) KeyDirectory() string {
	if c.KeyDir != "" {
		return c.KeyDir
	}
	return filepath.Join(c.DataDir, "keys")
}

// New builds the Fiber app over an open pool and ensures the bootstrap admin.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, log *slog.Logger, tel *telemetry.Telemetry) (*fiber.App, error) {
	now := func() time.Time { return time.Now().UTC() }
	keys, err := jwtsign.Load(jwtsign.Config{Dir: cfg.KeyDirectory(), Issuer: cfg.Issuer, Audience: cfg.Audience, AccessTTL: cfg.AccessTTL})
	if err != nil {
		return nil, err
	}
	verifier, err := authn.NewStaticVerifier(keys.Keyfunc, authn.VerifierConfig{Issuer: cfg.Issuer, Audience: cfg.Audience})
	if err != nil {
		return nil, err
	}
	params := cfg.PasswordHashParams
	if params.Memory == 0 {
		params = argon2.DefaultParams
	}
	hasher := argon2.New(params)
	users, tokens := postgres.NewUsers(pool), postgres.NewRefreshTokens(pool)

	if cfg.AdminUsername != "" && cfg.AdminPassword != "" {
		if err := (app.EnsureAdmin{Users: users, Hasher: hasher, Now: now}).Handle(ctx, cfg.AdminUsername, cfg.AdminPassword); err != nil {
			return nil, err
		}
	}
	login, err := app.NewLogin(users, hasher, postgres.NewLoginThrottle(pool),
		app.LoginPolicy{MaxPerAccount: cfg.MaxFailures, MaxPerIP: cfg.MaxFailuresPerIP, Window: cfg.LoginLockout},
		keys, tokens, cfg.RefreshTTL, now)
	if err != nil {
		return nil, err
	}

	fiberApp := web.NewApp(web.AppConfig{Service: "auth-service", Logger: log, Telemetry: tel,
		Checks: map[string]web.Check{"db": pgdb.Ping(pool)}, TrustedProxies: cfg.TrustedProxies})
	porthttp.Mount(fiberApp, porthttp.UseCases{
		Register:    app.Register{Users: users, Hasher: hasher, AutoApprove: cfg.AutoApprove, Now: now},
		Login:       login,
		Refresh:     app.NewRefresh(users, keys, tokens, cfg.RefreshTTL, now),
		Logout:      app.Logout{Tokens: tokens, Now: now},
		CurrentUser: app.CurrentUser{Users: users},
		ListUsers:   app.ListUsers{Users: users},
		GetUser:     app.GetUser{Users: users},
		ApproveUser: app.ApproveUser{Users: users, Tokens: tokens, Now: now},
		ChangeRole:  app.ChangeRole{Users: users, Now: now},
		DeleteUser:  app.DeleteUser{Users: users},
	}, porthttp.Config{JWKS: keys.JWKS(), Verifier: verifier, RefreshTTL: cfg.RefreshTTL, CookieSecure: cfg.CookieSecure, Now: now})
	return fiberApp, nil
}
