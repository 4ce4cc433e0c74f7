package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	schema = "vm_svc"
	topic  = "limen.vm.events"
)

// serviceMigrations stand in for a service's own schema, version 1 like the outbox's first migration.
var serviceMigrations = fstest.MapFS{"00001_vms.sql": {Data: []byte(`-- +goose Up
CREATE TABLE vms (id text PRIMARY KEY, owner_id bigint NOT NULL, sequence bigint NOT NULL);
-- +goose Down
DROP TABLE vms;
`)}}

// newDatabase opens a fresh service schema with the outbox table beside the service's tables.
func newDatabase(t testing.TB) (dsn string, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	dsn = pgtest.NewDatabase(t)
	pool, err := pgdb.Open(ctx, dsn, schema, serviceMigrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := outbox.Migrate(ctx, pool, schema); err != nil {
		t.Fatal(err)
	}
	return dsn, pool
}

func openPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn, schema, serviceMigrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func startBroker(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

// startRelay runs a relay until the test ends.
func startRelay(t testing.TB, pool *pgxpool.Pool, cfg outbox.RelayConfig, log *slog.Logger) {
	t.Helper()
	relay := outbox.NewRelay(pool, cfg, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
		if err := relay.Close(); err != nil {
			t.Errorf("close relay: %v", err)
		}
	})
}

type vm struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// updateVM is how a service uses the outbox: change the aggregate, then record its event, in one tx.
func updateVM(ctx context.Context, tx pgx.Tx, w *outbox.Writer, id string, owner, seq int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO vms (id, owner_id, sequence) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET sequence = excluded.sequence`, id, owner, seq); err != nil {
		return err
	}
	return w.Add(ctx, tx, outbox.Event{
		Topic: topic, Type: "limen.vm.updated", Subject: id, OwnerID: owner, Sequence: seq,
		Data: vm{ID: id, State: fmt.Sprintf("state-%d", seq)},
	})
}

// cloudEvent is the structured CloudEvent as a consumer decodes it.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	OwnerID         int64           `json:"ownerid"`
	Sequence        int64           `json:"sequence"`
	Data            json.RawMessage `json:"data"`
}

type received struct {
	key     string
	headers map[string]string
	event   cloudEvent
}

// consume reads want records from the start of the topic, then lingers briefly so that a duplicate
// or stray record would be counted too.
func consume(t *testing.T, addrs []string, want int) []received {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []received
	poll := func(timeout time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		fetches := cl.PollFetches(ctx)
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", topic, partition, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			rec := received{key: string(r.Key), headers: map[string]string{}}
			for _, h := range r.Headers {
				rec.headers[h.Key] = string(h.Value)
			}
			if err := json.Unmarshal(r.Value, &rec.event); err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			got = append(got, rec)
		})
	}
	for deadline := time.Now().Add(20 * time.Second); len(got) < want && time.Now().Before(deadline); {
		poll(time.Until(deadline))
	}
	if len(got) < want {
		t.Fatalf("consumed %d records, want %d", len(got), want)
	}
	poll(300 * time.Millisecond)
	return got
}

// requireOrderedPerKey checks that every key's stream is exactly sequence 1..n, in order, once each.
func requireOrderedPerKey(t *testing.T, got []received, perKey map[string]int64) {
	t.Helper()
	last := map[string]int64{}
	for _, r := range got {
		if r.event.Sequence != last[r.key]+1 {
			t.Fatalf("key %s: sequence %d after %d", r.key, r.event.Sequence, last[r.key])
		}
		last[r.key] = r.event.Sequence
	}
	for key, n := range perKey {
		if last[key] != n {
			t.Fatalf("key %s: last sequence %d, want %d", key, last[key], n)
		}
	}
	if len(last) != len(perKey) {
		t.Fatalf("records for %d keys, want %d", len(last), len(perKey))
	}
}

func countRows(t testing.TB, pool *pgxpool.Pool, where string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func TestRelay_CommittedEventsArriveAsCloudEventsInOrderPerKey(t *testing.T) {
	ctx := context.Background()
	_, pool := newDatabase(t)
	broker := startBroker(t)
	w := outbox.NewWriter("vm-service")

	traceID, spanID := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	traced := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	wantTraceparent := fmt.Sprintf("00-%s-%s-01", traceID, spanID)

	// Keys interleave across transactions; vm-c is written without a span.
	for seq := int64(1); seq <= 5; seq++ {
		err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
			return errors.Join(
				updateVM(traced, tx, w, "vm-a", 7, seq),
				updateVM(traced, tx, w, "vm-b", 8, seq),
				updateVM(ctx, tx, w, "vm-c", 9, seq),
			)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		return errors.Join(updateVM(traced, tx, w, "vm-rolled-back", 7, 1), boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}

	startRelay(t, pool, outbox.RelayConfig{Brokers: broker.ListenAddrs()}, nil)
	got := consume(t, broker.ListenAddrs(), 15)

	requireOrderedPerKey(t, got, map[string]int64{"vm-a": 5, "vm-b": 5, "vm-c": 5})
	ids := map[string]bool{}
	for _, r := range got {
		e := r.event
		owner := map[string]int64{"vm-a": 7, "vm-b": 8, "vm-c": 9}[r.key]
		if e.SpecVersion != "1.0" || e.Source != "vm-service" || e.Type != "limen.vm.updated" ||
			e.Subject != r.key || e.OwnerID != owner || e.DataContentType != "application/json" {
			t.Fatalf("event attributes: %+v", e)
		}
		if _, err := uuid.Parse(e.ID); err != nil || ids[e.ID] {
			t.Fatalf("id %q not a fresh uuid (%v)", e.ID, err)
		}
		ids[e.ID] = true
		if time.Since(e.Time) > time.Minute {
			t.Fatalf("time %v", e.Time)
		}
		var data vm
		if err := json.Unmarshal(e.Data, &data); err != nil || data != (vm{ID: r.key, State: fmt.Sprintf("state-%d", e.Sequence)}) {
			t.Fatalf("data %s (%v)", e.Data, err)
		}
		if ct := r.headers["content-type"]; ct != "application/cloudevents+json" {
			t.Fatalf("content-type header %q", ct)
		}
		tp, traced := r.headers["traceparent"]
		if r.key == "vm-c" && traced {
			t.Fatalf("vm-c had no span but got traceparent %q", tp)
		}
		if r.key != "vm-c" && tp != wantTraceparent {
			t.Fatalf("traceparent %q, want %q", tp, wantTraceparent)
		}
	}
	eventually(t, "every row is marked published", func() bool { return countRows(t, pool, "published_at IS NULL") == 0 })
	if n := countRows(t, pool, "key = 'vm-rolled-back'"); n != 0 {
		t.Fatalf("rolled-back transaction left %d outbox rows", n)
	}
}

func TestWriter_EventsAreValidCloudEvents(t *testing.T) {
	ctx := context.Background()
	_, pool := newDatabase(t)
	err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
		return updateVM(ctx, tx, outbox.NewWriter("vm-service"), "vm-a", 7, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	if err := pool.QueryRow(ctx, "SELECT payload FROM outbox").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var ce cloudevents.Event
	if err := json.Unmarshal(payload, &ce); err != nil {
		t.Fatal(err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatal(err)
	}
	if ce.Subject() != "vm-a" || ce.Extensions()["sequence"] == nil || ce.Extensions()["ownerid"] == nil {
		t.Fatalf("decoded %v", ce)
	}
}

func TestWriter_RejectsEventsThatCannotBePublished(t *testing.T) {
	ctx := context.Background()
	_, pool := newDatabase(t)
	w := outbox.NewWriter("vm-service")
	valid := outbox.Event{Topic: topic, Type: "limen.vm.updated", Subject: "vm-a", OwnerID: 1, Sequence: 1}
	for name, change := range map[string]func(*outbox.Event){
		"no topic":             func(e *outbox.Event) { e.Topic = "" },
		"no subject":           func(e *outbox.Event) { e.Subject = "" },
		"no type":              func(e *outbox.Event) { e.Type = "" },
		"sequence over int32":  func(e *outbox.Event) { e.Sequence = 1 << 31 },
		"larger than a batch":  func(e *outbox.Event) { e.Data = strings.Repeat("x", 1<<20) },
		"data not marshalable": func(e *outbox.Event) { e.Data = func() {} },
	} {
		t.Run(name, func(t *testing.T) {
			e := valid
			change(&e)
			err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return w.Add(ctx, tx, e) })
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if n := countRows(t, pool, "true"); n != 0 {
		t.Fatalf("%d rows recorded", n)
	}
}

func TestMigrate_IsIdempotent(t *testing.T) {
	_, pool := newDatabase(t)
	if err := outbox.Migrate(context.Background(), pool, schema); err != nil {
		t.Fatal(err)
	}
}

// logCounter counts log lines mentioning a text, to see the relay retrying.
type logCounter struct {
	mu    sync.Mutex
	lines []string
}

func (c *logCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, string(p))
	return len(p), nil
}

func (c *logCounter) count(text string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, text) {
			n++
		}
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestRelay_BrokerDown_RowsWaitAndAreDeliveredWhenItReturns(t *testing.T) {
	ctx := context.Background()
	_, pool := newDatabase(t)
	w := outbox.NewWriter("vm-service")
	port := freePort(t)
	addr := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	logs := &logCounter{}
	startRelay(t, pool, outbox.RelayConfig{Brokers: addr, BatchSize: 7}, slog.New(slog.NewTextHandler(logs, nil)))

	record := func(from, to int64) {
		for seq := from; seq <= to; seq++ {
			for _, id := range []string{"vm-a", "vm-b", "vm-c"} {
				if err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return updateVM(ctx, tx, w, id, 1, seq) }); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	// Up: the first events go through.
	first := startBroker(t, kfake.Ports(port))
	record(1, 4)
	requireOrderedPerKey(t, consume(t, addr, 12), map[string]int64{"vm-a": 4, "vm-b": 4, "vm-c": 4})
	eventually(t, "the first rows are marked published", func() bool { return countRows(t, pool, "published_at IS NULL") == 0 })

	// Down: new events stay in the table while the relay keeps failing.
	first.Close()
	record(5, 10)
	eventually(t, "the relay failed a few times", func() bool { return logs.count("batch not published") >= 3 })
	if n := countRows(t, pool, "published_at IS NULL"); n != 18 {
		t.Fatalf("%d unsent rows while the broker is down, want 18", n)
	}

	// Back (a new, empty broker on the same port): everything recorded meanwhile arrives, in order.
	startBroker(t, kfake.Ports(port))
	got := consume(t, addr, 18)
	last := map[string]int64{"vm-a": 4, "vm-b": 4, "vm-c": 4}
	for _, r := range got {
		if r.event.Sequence != last[r.key]+1 {
			t.Fatalf("key %s: sequence %d after %d", r.key, r.event.Sequence, last[r.key])
		}
		last[r.key] = r.event.Sequence
	}
	if len(got) != 18 {
		t.Fatalf("%d records after the broker returned, want 18", len(got))
	}
	eventually(t, "every row is marked published", func() bool { return countRows(t, pool, "published_at IS NULL") == 0 })
}

func TestRelay_TwoReplicasShareTheTableAndKeepEachKeysOrder(t *testing.T) {
	ctx := context.Background()
	dsn, pool := newDatabase(t)
	broker := startBroker(t)
	cfg := outbox.RelayConfig{Brokers: broker.ListenAddrs(), BatchSize: 10, PollInterval: 5 * time.Millisecond}
	startRelay(t, pool, cfg, nil)
	startRelay(t, openPool(t, dsn), cfg, nil)

	// Writers race the relays, so batches of both replicas interleave keys.
	const keys, perKey = 24, 40
	w := outbox.NewWriter("vm-service")
	want := map[string]int64{}
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := range keys {
		id := fmt.Sprintf("vm-%02d", k)
		want[id] = perKey
		wg.Go(func() {
			for seq := int64(1); seq <= perKey; seq++ {
				if err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return updateVM(ctx, tx, w, id, 1, seq) }); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}

	got := consume(t, broker.ListenAddrs(), keys*perKey)
	requireOrderedPerKey(t, got, want)
	if len(got) != keys*perKey {
		t.Fatalf("%d records, want %d (duplicates)", len(got), keys*perKey)
	}
	eventually(t, "every row is marked published", func() bool { return countRows(t, pool, "published_at IS NULL") == 0 })
}

func TestRelay_PrunesRowsPublishedBeforeTheRetention(t *testing.T) {
	ctx := context.Background()
	_, pool := newDatabase(t)
	broker := startBroker(t)
	w := outbox.NewWriter("vm-service")
	for seq := int64(1); seq <= 3; seq++ {
		if err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error { return updateVM(ctx, tx, w, "vm-a", 1, seq) }); err != nil {
			t.Fatal(err)
		}
	}
	// Row 1 was published two days ago, row 2 an hour ago; row 3 is still to be sent.
	if _, err := pool.Exec(ctx, `UPDATE outbox SET published_at = now() - CASE id WHEN 1 THEN interval '2 days' ELSE interval '1 hour' END
		WHERE id IN (1, 2)`); err != nil {
		t.Fatal(err)
	}
	startRelay(t, pool, outbox.RelayConfig{Brokers: broker.ListenAddrs()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	consume(t, broker.ListenAddrs(), 1)
	eventually(t, "the old row is pruned", func() bool { return countRows(t, pool, "true") == 2 })
	if n := countRows(t, pool, "id = 1"); n != 0 {
		t.Fatal("row published two days ago survived")
	}
}

// BenchmarkRelay measures how fast one relay drains a backlog from the table into the broker.
func BenchmarkRelay(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			_, pool := newDatabase(b)
			broker := startBroker(b)
			err := pgdb.InTx(ctx, pool, func(tx pgx.Tx) error {
				return outbox.NewWriter("vm-service").Add(ctx, tx, outbox.Event{
					Topic: topic, Type: "limen.vm.updated", Subject: "vm-0", OwnerID: 1, Sequence: 1,
					Data: map[string]any{"id": "vm-0", "name": "bench", "state": "running", "cpu": 2,
						"memoryMiB": 2048, "os": "linux", "disks": []string{strings.Repeat("d", 200)}},
				})
			})
			if err != nil {
				b.Fatal(err)
			}
			// The backlog: b.N copies of that event spread over 100 VMs.
			if _, err := pool.Exec(ctx, `INSERT INTO outbox (topic, key, payload)
				SELECT topic, 'vm-' || (g % 100), payload FROM outbox, generate_series(2, $1) g`, b.N); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			startRelay(b, pool, outbox.RelayConfig{Brokers: broker.ListenAddrs(), BatchSize: batch}, nil)
			for pending := true; pending; time.Sleep(5 * time.Millisecond) {
				if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM outbox WHERE published_at IS NULL)").Scan(&pending); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
