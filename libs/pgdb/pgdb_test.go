package pgdb_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"limen/libs/pgdb"
	"limen/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var migrations = os.DirFS("testdata/migrations")

func TestOpen_MigratesIntoItsOwnSchema(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t), "widgets_svc", migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	if _, err := pool.Exec(ctx, "INSERT INTO widgets (name) VALUES ('a')"); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := pool.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 'widgets'").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != "widgets_svc" {
		t.Fatalf("widgets created in schema %q", schema)
	}
}

func TestOpen_ConcurrentReplicasMigrateOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			pool, err := pgdb.Open(ctx, dsn, "widgets_svc", migrations)
			if err == nil {
				pool.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateTracked_KeepsVersionsApartFromTheService(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t), "widgets_svc", migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	gadgets := fstest.MapFS{"00001_gadgets.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE gadgets (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE gadgets;\n")}}
	for range 2 { // the second run finds nothing to do
		if err := pgdb.MigrateTracked(ctx, pool, "widgets_svc", "gadgets_db_version", gadgets); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "INSERT INTO gadgets (id) VALUES (1)"); err != nil {
		t.Fatalf("version 1 of the second set was not applied: %v", err)
	}
}

func TestOpen_RejectsUnsafeSchemaName(t *testing.T) {
	if _, err := pgdb.Open(context.Background(), pgtest.NewDatabase(t), "x; DROP", migrations); err == nil {
		t.Fatal("unsafe schema name accepted")
	}
}

func TestInTx_RollsBackOnError(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t), "widgets_svc", migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	boom := errors.New("boom")
	err = pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO widgets (name) VALUES ('b')"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM widgets").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after rollback: %d (%v)", n, err)
	}
}

// Every connection carries the server-side deadlines: a statement that runs too long is cancelled.
func TestOpen_StatementsHaveADeadline(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t), "widgets_svc", migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var timeout string
	if err := pool.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil || timeout != "5s" {
		t.Fatalf("statement_timeout %q (%v), want 5s", timeout, err)
	}
	started := time.Now()
	if _, err := pool.Exec(ctx, "SELECT pg_sleep(30)"); err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("a 30 s statement: %v", err)
	}
	if took := time.Since(started); took > 7*time.Second {
		t.Fatalf("cancelled after %s", took)
	}
	bounded, cancel := pgdb.Deadline(ctx)
	defer cancel()
	if deadline, ok := bounded.Deadline(); !ok || time.Until(deadline) > pgdb.CallTimeout {
		t.Fatal("Deadline gave a context without the call timeout")
	}
}
