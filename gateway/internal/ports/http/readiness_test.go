package http_test

import (
	"limen/gateway/internal/adapters/readiness"
	"limen/gateway/internal/domain"
)

func readinessOf(bases map[domain.Upstream]string) *readiness.Client { return readiness.New(bases) }
