package config_test

import (
	"strings"
	"testing"
	"time"

	"limen/libs/config"
)

type sample struct {
	Addr    string        `env:"SAMPLE_ADDR" envDefault:"127.0.0.1:1" validate:"hostname_port"`
	Timeout time.Duration `env:"SAMPLE_TIMEOUT" envDefault:"1s" validate:"gt=0"`
	Level   string        `env:"SAMPLE_LEVEL" envDefault:"info" validate:"oneof=debug info warn error"`
}

func TestLoad_Defaults(t *testing.T) {
	cfg, err := config.Load[sample]()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:1" || cfg.Timeout != time.Second || cfg.Level != "info" {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestLoad_UnparsableValue_NamesTheVariable(t *testing.T) {
	t.Setenv("SAMPLE_TIMEOUT", "soon")
	_, err := config.Load[sample]()
	if err == nil || !strings.Contains(err.Error(), "SAMPLE_TIMEOUT") {
		t.Fatalf("want an error naming SAMPLE_TIMEOUT, got %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error must be one line: %q", err)
	}
}

func TestLoad_InvalidValue_NamesTheField(t *testing.T) {
	t.Setenv("SAMPLE_LEVEL", "loud")
	_, err := config.Load[sample]()
	if err == nil || !strings.Contains(err.Error(), "SAMPLE_LEVEL") {
		t.Fatalf("want an error naming SAMPLE_LEVEL, got %v", err)
	}
}
