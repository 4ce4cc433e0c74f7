package pgtest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"limen/libs/testkit"
)

var (
	shared  *Cluster
	counter atomic.Int64
)

// Main starts this test package's cluster, runs the tests and stops the cluster. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { testkit.Main(m, StartShared) }

// StartShared starts the package's cluster for a TestMain that needs other kits too; call the
// returned stop after m.Run.
func StartShared(ctx context.Context) (stop func() error, err error) {
	cluster, err := StartCluster(ctx)
	if err != nil {
		return nil, err
	}
	shared = cluster
	return cluster.Stop, nil
}

// NewDatabase creates a fresh, empty database on the package's cluster and returns its DSN.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if shared == nil {
		t.Fatal("pgtest: no cluster; call pgtest.Main(m) from TestMain")
	}
	name := fmt.Sprintf("t%d_%s", counter.Add(1), sanitize(t.Name()))
	dsn, err := shared.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return dsn
}

// sanitize keeps a database name short and made of safe characters.
func sanitize(name string) string {
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, name)
	if len(name) > 40 {
		name = name[:40]
	}
	return name
}
