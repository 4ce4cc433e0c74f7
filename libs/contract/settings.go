package contract

import "time"

// Settings are the environment variables every service reads the same way. Each service's
// configuration embeds them; LISTEN_ADDR, when unset, is the service's entry in DefaultListenAddr.
type Settings struct {
	ListenAddr   string        `env:"LISTEN_ADDR" validate:"omitempty,hostname_port"`
	LogLevel     string        `env:"LOG_LEVEL" envDefault:"info" validate:"oneof=debug info warn error"`
	Issuer       string        `env:"LIMEN_JWT_ISSUER" envDefault:"limen" validate:"required"`
	Audience     string        `env:"LIMEN_JWT_AUDIENCE" envDefault:"limen-api" validate:"required"`
	DrainTimeout time.Duration `env:"LIMEN_DRAIN_TIMEOUT" envDefault:"20s" validate:"gt=0"`
	JWKSURL      string        `env:"LIMEN_JWKS_URL" envDefault:"http://127.0.0.1:18081/api/auth/jwks" validate:"required,http_url"`
}

// Shared is the settings themselves, promoted to every configuration that embeds them.
func (s Settings) Shared() Settings { return s }

// DefaultListenAddr is where each service listens when LISTEN_ADDR is unset, and where its peers look
// for it by default.
var DefaultListenAddr = map[string]string{
	"gateway":       "127.0.0.1:18443",
	"auth-service":  "127.0.0.1:18081",
	"vm-service":    "127.0.0.1:18082",
	"media-service": "127.0.0.1:18083",
	"quota-service": "127.0.0.1:18084",
}

// Addr is where the service named service listens: LISTEN_ADDR, or its default.
func (s Settings) Addr(service string) string {
	if s.ListenAddr != "" {
		return s.ListenAddr
	}
	return DefaultListenAddr[service]
}
