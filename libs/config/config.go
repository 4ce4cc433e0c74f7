// Package config loads a service's configuration from the environment.
//
// Each service declares one struct with `env` tags (github.com/caarlos0/env) and `validate` tags
// (github.com/go-playground/validator); a bad or missing value stops start-up with one clear line.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
	"github.com/go-playground/validator/v10"
)

// validate reports fields by their environment variable, which is what an operator can fix.
var validate = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			return key
		}
		return f.Name
	})
	return v
}()

// Load parses the environment into T and validates it.
func Load[T any]() (T, error) {
	cfg, err := env.ParseAs[T]()
	if err != nil {
		return cfg, describe(reflect.TypeOf(cfg), err)
	}
	if err := validate.Struct(cfg); err != nil {
		var invalid validator.ValidationErrors
		if errors.As(err, &invalid) {
			parts := make([]string, 0, len(invalid))
			for _, fe := range invalid {
				parts = append(parts, fmt.Sprintf("%s=%q fails %q", fe.Field(), fmt.Sprint(fe.Value()), fe.Tag()+paramSuffix(fe.Param())))
			}
			return cfg, errors.New(strings.Join(parts, "; "))
		}
		return cfg, err
	}
	return cfg, nil
}

// MustLoad is Load for main packages: on error it prints one line naming the service and exits 2.
func MustLoad[T any](service string) T {
	cfg, err := Load[T]()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration: %v\n", service, err)
		os.Exit(2)
	}
	return cfg
}

func paramSuffix(p string) string {
	if p == "" {
		return ""
	}
	return "=" + p
}

// describe joins env's aggregate error into a single line that names each offending variable.
func describe(cfgType reflect.Type, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	parts := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var parseErr env.ParseError
		if errors.As(e, &parseErr) {
			if key := envKeyOf(cfgType, parseErr.Name); key != "" {
				parts = append(parts, fmt.Sprintf("%s: %v", key, parseErr.Err))
				continue
			}
		}
		parts = append(parts, e.Error())
	}
	return errors.New(strings.Join(parts, "; "))
}

// envKeyOf finds the env tag of the field called name, looking into nested structs.
func envKeyOf(t reflect.Type, name string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == name {
			key, _, _ := strings.Cut(f.Tag.Get("env"), ",")
			return f.Tag.Get("envPrefix") + key
		}
		if key := envKeyOf(f.Type, name); key != "" {
			return f.Tag.Get("envPrefix") + key
		}
	}
	return ""
}
