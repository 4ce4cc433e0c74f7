// Package service wires the gateway's adapters, use cases and HTTP port; main and the tests build the
// gateway the same way.
package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/docs"
	"limen/gateway/internal/adapters/kafka"
	"limen/gateway/internal/adapters/kafkaprobe"
	"limen/gateway/internal/adapters/readiness"
	"limen/gateway/internal/adapters/vmclient"
	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/process"
	"limen/libs/revocation"
	"limen/libs/telemetry"
	"limen/libs/web"
)

// Name is the service's name in logs, traces and metrics.
const Name = "gateway"

// metricsOff as LIMEN_METRICS_ADDR serves no internal listener.
const metricsOff = "off"

// Config is the gateway's environment.
type Config struct {
	contract.Settings
	// AuthURL is auth-service's base URL; unset, auth-service at its default address.
	AuthURL         string        `env:"AUTH_SERVICE_URL" validate:"omitempty,http_url"`
	VMURL           string        `env:"VM_SERVICE_URL" validate:"omitempty,http_url"`
	MediaURL        string        `env:"MEDIA_SERVICE_URL" validate:"omitempty,http_url"`
	QuotaURL        string        `env:"QUOTA_SERVICE_URL" validate:"omitempty,http_url"`
	KafkaBrokers    []string      `env:"KAFKA_BROKERS"`
	CORSOrigins     []string      `env:"LIMEN_CORS_ORIGINS"`
	BodyLimit       int           `env:"LIMEN_BODY_LIMIT" envDefault:"1048576" validate:"gt=0"`
	UpstreamTimeout time.Duration `env:"LIMEN_UPSTREAM_TIMEOUT" envDefault:"30s" validate:"gt=0"`
	UploadLimit     int64         `env:"LIMEN_UPLOAD_LIMIT" envDefault:"17179869184" validate:"gt=0"`
	UploadTimeout   time.Duration `env:"LIMEN_UPLOAD_TIMEOUT" envDefault:"2h" validate:"gt=0"`
	TLSCertFile     string        `env:"LIMEN_TLS_CERT_FILE" validate:"required_with=TLSKeyFile"`
	TLSKeyFile      string        `env:"LIMEN_TLS_KEY_FILE" validate:"required_with=TLSCertFile"`
	WSPingInterval  time.Duration `env:"LIMEN_WS_PING_INTERVAL" envDefault:"30s" validate:"gt=0"`
	WSSendQueue     int           `env:"LIMEN_WS_SEND_QUEUE" envDefault:"1024" validate:"gt=0"`
	WSMaxPerUser    int           `env:"LIMEN_WS_MAX_PER_USER" envDefault:"20" validate:"gt=0"`
	// TrustedProxies may state the client in X-Forwarded-For/-Proto/-Host; empty: nobody, the peer is
	// the client.
	TrustedProxies []string `env:"LIMEN_TRUSTED_PROXIES"`
	// MetricsAddr serves /metrics and /readyz, never on the public listener; "off": not served (an
	// empty value is the default, as for every variable).
	MetricsAddr string `env:"LIMEN_METRICS_ADDR" envDefault:"127.0.0.1:18444" validate:"hostname_port|eq=off"`
	// InternalToken is what vm-service's internal routes take: the console socket redeems tickets there.
	InternalToken string `env:"LIMEN_INTERNAL_TOKEN"`
}

// upstreams are the deployed services: those with a base URL, auth-service always.
func (c Config) upstreams() map[domain.Upstream]string {
	auth := c.AuthURL
	if auth == "" {
		auth = "http://" + contract.DefaultListenAddr["auth-service"]
	}
	bases := map[domain.Upstream]string{}
	for u, url := range map[domain.Upstream]string{domain.UpstreamAuth: auth, domain.UpstreamVM: c.VMURL,
		domain.UpstreamMedia: c.MediaURL, domain.UpstreamQuota: c.QuotaURL} {
		if url != "" {
			bases[u] = strings.TrimSuffix(url, "/")
		}
	}
	return bases
}

// Run serves the gateway until ctx is done. It opens nothing the process owns beside the service.
func Run(ctx context.Context, cfg Config, env process.Env) error {
	return process.Serve(ctx, cfg.Addr(Name), cfg.DrainTimeout, env.Log, func(ctx context.Context) (*Service, error) {
		return New(ctx, cfg, env.Log, env.Telemetry)
	})
}

// Service is the gateway assembled: its public app (TLS when configured), the internal app for
// monitoring on a listener of its own, and what follows Kafka: the revocations every token check
// consults, and the VM events the live status socket pushes.
type Service struct {
	app *fiber.App
	// internal is nil with LIMEN_METRICS_ADDR=off.
	internal     *fiber.App
	internalAddr string
	// tls is nil without a certificate: the public listener is plain TCP.
	tls *tls.Config
	// follower and events are nil without brokers.
	follower *revocation.Follower
	events   *kafka.Consumer
}

// App is the public app.
func (s *Service) App() *fiber.App { return s.app }

// Run follows revocations and VM events until ctx is done; a broker out of reach is retried, never
// fatal.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if s.follower != nil {
		wg.Go(func() { _ = s.follower.Run(ctx) })
	}
	if s.events != nil {
		wg.Go(func() { _ = s.events.Run(ctx) })
	}
	wg.Wait()
	return nil
}

// Listen implements process.Listener: the public listener, in TLS when configured, and the internal
// app's listener unless it is off.
func (s *Service) Listen(addr string) (net.Listener, []web.Listening, error) {
	public, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if s.tls != nil {
		public = tls.NewListener(public, s.tls)
	}
	if s.internal == nil {
		return public, nil, nil
	}
	internal, err := net.Listen("tcp", s.internalAddr)
	if err != nil {
		public.Close()
		return nil, nil, fmt.Errorf("LIMEN_METRICS_ADDR: %w", err)
	}
	return public, []web.Listening{{App: s.internal, Listener: internal}}, nil
}

// New builds the gateway; ctx bounds its work (the JWKS refresh, the live status sockets).
func New(ctx context.Context, cfg Config, log *slog.Logger, tel *telemetry.Telemetry) (*Service, error) {
	if _, err := web.ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("LIMEN_TRUSTED_PROXIES: %w", err)
	}
	if err := porthttp.CheckOrigins(cfg.CORSOrigins); err != nil {
		return nil, fmt.Errorf("LIMEN_CORS_ORIGINS: %w", err)
	}
	svc := &Service{}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, err
		}
		svc.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	apiDocs, err := porthttp.NewAPIDocs(docs.OpenAPI)
	if err != nil {
		return nil, err
	}
	revoked := revocation.NewList()
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience, Revocations: revoked})
	if err != nil {
		return nil, err
	}

	bases := cfg.upstreams()
	health := app.HealthSources{Services: readiness.New(bases), Timeout: 2 * time.Second, CacheFor: time.Second, Now: time.Now}
	for _, u := range domain.Upstreams {
		if _, ok := bases[u]; ok {
			health.Deployed = append(health.Deployed, u)
		}
	}
	hub := app.NewVMStatusHub(cfg.WSSendQueue)
	watch := app.WatchVMStatusHandler{Hub: hub}
	if base, ok := bases[domain.UpstreamVM]; ok {
		watch.VMs = vmclient.New(base)
	}
	if len(cfg.KafkaBrokers) > 0 {
		health.Broker = kafkaprobe.Probe{Brokers: cfg.KafkaBrokers}
		svc.follower = revocation.NewFollower(cfg.KafkaBrokers, revoked, log)
		svc.events = kafka.NewConsumer(cfg.KafkaBrokers, hub, log)
	} else {
		log.Warn("KAFKA_BROKERS unset: revoked tokens keep working at the gateway until they expire")
		log.Warn("KAFKA_BROKERS unset: live VM events disabled; " + porthttp.VMStatusPath + " sends the VM list only")
	}
	application := app.Application{Queries: app.Queries{CheckHealth: app.NewCheckHealthHandler(health), WatchVMStatus: watch}}

	// ISO uploads (many GiB) stream through; every other route keeps the body limit. /metrics and
	// /readyz are only on the internal listener. CORS reaches every public answer.
	appCfg := web.AppConfig{Service: Name, Logger: log, Telemetry: tel, BodyLimit: cfg.BodyLimit,
		StreamRequestBody: true, Upload: porthttp.IsUpload, TrustedProxies: cfg.TrustedProxies, SeparateInternal: true,
		Edge: []fiber.Handler{porthttp.CORS(cfg.CORSOrigins)}}
	svc.app = web.NewApp(appCfg)
	if cfg.MetricsAddr != metricsOff {
		svc.internal, svc.internalAddr = web.NewInternalApp(appCfg), cfg.MetricsAddr
	}

	status := porthttp.NewVMStatus(ctx, watch, verifier, log)
	status.PingInterval = cfg.WSPingInterval
	status.AllowedOrigins, status.MaxPerUser = cfg.CORSOrigins, cfg.WSMaxPerUser
	revoked.Subscribe(status.UserChanged)
	proxy := porthttp.NewProxy(bases, cfg.UpstreamTimeout)
	proxy.UploadLimit, proxy.UploadTimeout = cfg.UploadLimit, cfg.UploadTimeout
	console := porthttp.NewConsole(ctx, bases[domain.UpstreamVM], cfg.InternalToken, log)
	console.PingInterval = cfg.WSPingInterval
	porthttp.Mount(svc.app, application, porthttp.Routes{Verifier: verifier, Proxy: proxy, VMStatus: status, APIDocs: apiDocs, Console: console})
	return svc, nil
}
