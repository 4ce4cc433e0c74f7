// Package servicetest builds what a component test of a service stands on, the same way for every
// service: a fresh database in the package's Postgres (its schema and the outbox migrated), a broker
// of the test's own with the topics the service writes and reads, a JWKS issuer for access tokens,
// and, for a libvirt-driving service, a kept-connected libvirt connection to the package's libvirtd.
// The test package's TestMain starts the shared Postgres and libvirtd:
//
//	func TestMain(m *testing.M) { testkit.Main(m, pgtest.StartShared, libvirttest.StartShared) }
package servicetest

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/libs/outbox"
	"limen/libs/testkit/jwttest"
	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/pgtest"
)

// Options say what differs between services.
type Options struct {
	// Schema and Migrations are the service's own.
	Schema     string
	Migrations fs.FS
	// Partitions is each topic the broker starts with, and its partition count.
	Partitions map[string]int32
	// Via, when set, is how the service reaches its database (a proxy in front of the DSN).
	Via func(dsn string) string
	// ReconnectMax bounds the libvirt connection's reconnect backoff (0: the manager's default).
	ReconnectMax time.Duration
	// NoLibvirt is for a service that drives no libvirt: no daemon is asked for (the package's
	// TestMain need not start one) and the stack's Daemon and Conn stay nil.
	NoLibvirt bool
}

// Stack is the dependencies of one component test. Ctx ends at the test's cleanup, after the cleanups
// the test registered later (stopping its service) have run.
type Stack struct {
	Ctx    context.Context
	Log    *slog.Logger
	Pool   *pgxpool.Pool
	Broker *kfake.Cluster
	Keys   *jwttest.KeyIssuer
	Daemon *libvirttest.Daemon
	Conn   *libvirtconn.Manager
}

// New builds the stack; everything it starts stops at the test's end.
func New(t testing.TB, o Options) *Stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var daemon *libvirttest.Daemon
	if !o.NoLibvirt {
		daemon = libvirttest.Shared(t)
	}
	dsn := pgtest.NewDatabase(t)
	if o.Via != nil {
		dsn = o.Via(dsn)
	}
	pool, err := outbox.Open(ctx, dsn, o.Schema, o.Migrations)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	seeds := []kfake.Opt{kfake.NumBrokers(1)}
	for topic, partitions := range o.Partitions {
		seeds = append(seeds, kfake.SeedTopics(partitions, topic))
	}
	broker, err := kfake.NewCluster(seeds...)
	if err != nil {
		cancel()
		pool.Close()
		t.Fatal(err)
	}
	var conn *libvirtconn.Manager
	connDone := make(chan struct{})
	if o.NoLibvirt {
		close(connDone)
	} else {
		conn = libvirtconn.New(libvirtconn.Config{URI: daemon.URI(), Socket: daemon.SocketPath(), ReconnectMax: o.ReconnectMax}, log)
		go func() { defer close(connDone); _ = conn.Run(ctx) }()
	}
	s := &Stack{Ctx: ctx, Log: log, Pool: pool, Broker: broker, Keys: jwttest.New(t), Daemon: daemon, Conn: conn}
	t.Cleanup(func() {
		cancel()
		<-connDone
		pool.Close()
		s.Broker.Close() // a test may have replaced it (a broker restarted on the same port)
	})
	return s
}

// Settings are the shared settings a service under test needs: the stack's token issuer.
func (s *Stack) Settings() contract.Settings {
	return contract.Settings{JWKSURL: s.Keys.JWKSURL, Issuer: jwttest.Issuer, Audience: jwttest.Audience, DrainTimeout: time.Second}
}
