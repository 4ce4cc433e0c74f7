// Command gateway is LIMEN's single entry point: it authenticates requests, routes /api to the
// services, reports their aggregated health and pushes live VM status to WebSocket clients.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2/middleware/cors"

	"limen/gateway/internal/adapters/kafka"
	"limen/gateway/internal/adapters/kafkaprobe"
	"limen/gateway/internal/adapters/readiness"
	"limen/gateway/internal/adapters/vmclient"
	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/process"
	"limen/libs/revocation"
	"limen/libs/web"
)

const name = "gateway"

// metricsOff as LIMEN_METRICS_ADDR serves no internal listener.
const metricsOff = "off"

type Config struct {
	ListenAddr      string        `env:"LISTEN_ADDR" envDefault:"127.0.0.1:18443" validate:"hostname_port"`
	AuthURL         string        `env:"AUTH_SERVICE_URL" envDefault:"http://127.0.0.1:18081" validate:"required,http_url"`
	VMURL           string        `env:"VM_SERVICE_URL" validate:"omitempty,http_url"`
	MediaURL        string        `env:"MEDIA_SERVICE_URL" validate:"omitempty,http_url"`
	QuotaURL        string        `env:"QUOTA_SERVICE_URL" validate:"omitempty,http_url"`
	KafkaBrokers    []string      `env:"KAFKA_BROKERS"`
	JWKSURL         string        `env:"LIMEN_JWKS_URL" envDefault:"http://127.0.0.1:18081/api/auth/jwks" validate:"required,http_url"`
	Issuer          string        `env:"LIMEN_JWT_ISSUER" envDefault:"limen" validate:"required"`
	Audience        string        `env:"LIMEN_JWT_AUDIENCE" envDefault:"limen-api" validate:"required"`
	CORSOrigins     []string      `env:"LIMEN_CORS_ORIGINS"`
	BodyLimit       int           `env:"LIMEN_BODY_LIMIT" envDefault:"1048576" validate:"gt=0"`
	UpstreamTimeout time.Duration `env:"LIMEN_UPSTREAM_TIMEOUT" envDefault:"30s" validate:"gt=0"`
	UploadLimit     int64         `env:"LIMEN_UPLOAD_LIMIT" envDefault:"17179869184" validate:"gt=0"`
	UploadTimeout   time.Duration `env:"LIMEN_UPLOAD_TIMEOUT" envDefault:"2h" validate:"gt=0"`
	TLSCertFile     string        `env:"LIMEN_TLS_CERT_FILE" validate:"required_with=TLSKeyFile"`
	TLSKeyFile      string        `env:"LIMEN_TLS_KEY_FILE" validate:"required_with=TLSCertFile"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info" validate:"oneof=debug info warn error"`
	DrainTimeout    time.Duration `env:"LIMEN_DRAIN_TIMEOUT" envDefault:"20s" validate:"gt=0"`
	WSPingInterval  time.Duration `env:"LIMEN_WS_PING_INTERVAL" envDefault:"30s" validate:"gt=0"`
	WSSendQueue     int           `env:"LIMEN_WS_SEND_QUEUE" envDefault:"256" validate:"gt=0"`
	WSMaxPerUser    int           `env:"LIMEN_WS_MAX_PER_USER" envDefault:"20" validate:"gt=0"`
	// TrustedProxies may state the client in X-Forwarded-For/-Proto/-Host; empty: nobody, the peer is
	// the client.
	TrustedProxies []string `env:"LIMEN_TRUSTED_PROXIES"`
	// MetricsAddr serves /metrics and /readyz, never on the public listener; "off": not served (an
	// empty value is the default, as for every variable).
	MetricsAddr string `env:"LIMEN_METRICS_ADDR" envDefault:"127.0.0.1:18444" validate:"hostname_port|eq=off"`
}

// upstreams are the deployed services: those with a base URL.
func (c Config) upstreams() map[domain.Upstream]string {
	bases := map[domain.Upstream]string{}
	for u, url := range map[domain.Upstream]string{domain.UpstreamAuth: c.AuthURL, domain.UpstreamVM: c.VMURL,
		domain.UpstreamMedia: c.MediaURL, domain.UpstreamQuota: c.QuotaURL} {
		if url != "" {
			bases[u] = strings.TrimSuffix(url, "/")
		}
	}
	return bases
}

func main() {
	process.Main(name, func(c Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, cfg Config, env process.Env) error {
	log := env.Log
	revoked := revocation.NewList()
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience, Revocations: revoked})
	if err != nil {
		return err
	}
	if len(cfg.KafkaBrokers) > 0 {
		follower := revocation.NewFollower(cfg.KafkaBrokers, revoked, log)
		following := make(chan struct{})
		followCtx, stopFollowing := context.WithCancel(ctx)
		go func() { defer close(following); _ = follower.Run(followCtx) }()
		defer func() { stopFollowing(); <-following }()
	} else {
		log.Warn("KAFKA_BROKERS unset: revoked tokens keep working at the gateway until they expire")
	}
	bases := cfg.upstreams()
	health := &app.Health{Services: readiness.New(bases), Timeout: 2 * time.Second, CacheFor: time.Second, Now: time.Now}
	for _, u := range domain.Upstreams {
		if _, ok := bases[u]; ok {
			health.Deployed = append(health.Deployed, u)
		}
	}
	if len(cfg.KafkaBrokers) > 0 {
		health.Broker = kafkaprobe.Probe{Brokers: cfg.KafkaBrokers}
	}

	if _, err := web.ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		return fmt.Errorf("LIMEN_TRUSTED_PROXIES: %w", err)
	}
	// ISO uploads (many GiB) stream through; every other route keeps the body limit. /metrics and
	// /readyz are only on the internal listener.
	appCfg := web.AppConfig{Service: name, Logger: log, Telemetry: env.Telemetry, BodyLimit: cfg.BodyLimit,
		StreamRequestBody: true, Upload: porthttp.IsUpload, TrustedProxies: cfg.TrustedProxies, SeparateInternal: true}
	fiberApp := web.NewApp(appCfg)
	if len(cfg.CORSOrigins) > 0 {
		fiberApp.Use(cors.New(cors.Config{AllowOrigins: strings.Join(cfg.CORSOrigins, ","), AllowCredentials: true,
			AllowHeaders: "Authorization, Content-Type, X-Request-ID", ExposeHeaders: "X-Request-ID, Retry-After"}))
	}
	liveCtx, stopLive := context.WithCancel(ctx)
	status, events := liveStatus(liveCtx, cfg, bases, verifier, log)
	revoked.Subscribe(status.UserChanged)
	defer func() { stopLive(); <-events }()
	proxy := porthttp.NewProxy(bases, verifier, cfg.UpstreamTimeout)
	proxy.UploadLimit, proxy.UploadTimeout = cfg.UploadLimit, cfg.UploadTimeout
	porthttp.Mount(fiberApp, health, proxy, status)

	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	served := []web.Listening{{App: fiberApp, Listener: ln}}
	if cfg.MetricsAddr != metricsOff {
		internal, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("LIMEN_METRICS_ADDR: %w", err)
		}
		served = append(served, web.Listening{App: web.NewInternalApp(appCfg), Listener: internal})
	}
	return web.ServeAll(ctx, cfg.DrainTimeout, log, served...)
}

// liveStatus wires the live status WebSocket: the hub, the VM lists from vm-service and, when brokers
// are configured, the Kafka consumer feeding the hub. events is closed once the consumer has stopped.
func liveStatus(ctx context.Context, cfg Config, bases map[domain.Upstream]string, verifier *authn.Verifier, log *slog.Logger) (*porthttp.VMStatus, <-chan struct{}) {
	hub := app.NewVMStatusHub(cfg.WSSendQueue)
	feed := &app.VMStatusFeed{Hub: hub}
	if base, ok := bases[domain.UpstreamVM]; ok {
		feed.VMs = vmclient.New(base)
	}
	events := make(chan struct{})
	if len(cfg.KafkaBrokers) > 0 {
		consumer := kafka.NewConsumer(cfg.KafkaBrokers, hub, log)
		go func() {
			defer close(events)
			_ = consumer.Run(ctx)
		}()
	} else {
		close(events)
		log.Warn("KAFKA_BROKERS unset: live VM events disabled; " + porthttp.VMStatusPath + " sends the VM list only")
	}
	status := porthttp.NewVMStatus(ctx, feed, verifier, log)
	status.PingInterval = cfg.WSPingInterval
	status.AllowedOrigins, status.MaxPerUser = cfg.CORSOrigins, cfg.WSMaxPerUser
	return status, events
}

func listen(cfg Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil || cfg.TLSCertFile == "" {
		return ln, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		ln.Close()
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}
