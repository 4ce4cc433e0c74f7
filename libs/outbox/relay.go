package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"
)

// RelayConfig tunes a Relay; zero fields take the defaults noted.
type RelayConfig struct {
	Brokers      []string
	BatchSize    int           // default 100
	PollInterval time.Duration // default 100ms when idle
	Retention    time.Duration // published rows older than this are pruned; default 24h
}

const (
	// maxBatchBytes is the most one produce request may carry to one partition: kafka-go's default
	// BatchBytes, which matches Kafka's default message.max.bytes.
	maxBatchBytes = 1 << 20
	// batchDeadline bounds one batch. A batch in flight when Run's context ends is still finished
	// within it, so a routine shutdown does not publish the batch a second time after restart.
	batchDeadline = 10 * time.Second
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 5 * time.Second
	pruneEvery    = time.Minute
)

// Relay publishes the outbox table's unsent rows to Kafka and marks them sent. Any number of replicas
// may run one on the same table: they share the work and still keep each key's order.
type Relay struct {
	pool      *pgxpool.Pool
	cfg       RelayConfig
	log       *slog.Logger
	transport *kafka.Transport
	kafka     *kafka.Writer
}

// NewRelay prepares a Relay over pool (whose search_path holds the outbox table); nothing connects
// until Run.
func NewRelay(pool *pgxpool.Pool, cfg RelayConfig, log *slog.Logger) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if log == nil {
		log = slog.Default()
	}
	// An own transport, because the shared default one caches metadata long enough to report a
	// freshly auto-created topic as unknown for seconds.
	transport := &kafka.Transport{MetadataTTL: time.Second}
	return &Relay{
		pool:      pool,
		cfg:       cfg,
		log:       log,
		transport: transport,
		kafka: &kafka.Writer{
			Addr:      kafka.TCP(cfg.Brokers...),
			Transport: transport,
			// Hash keeps a key on one partition, which is what orders one aggregate's events.
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			// One relay batch becomes at most one produce request per partition, so a partition gets
			// a batch entirely or not at all and a failure cannot leave a gap before later events.
			BatchSize:  cfg.BatchSize,
			BatchBytes: maxBatchBytes,
			// Each call hands over the whole batch at once; waiting for more only adds latency.
			BatchTimeout: 2 * time.Millisecond,
			// A couple of quick retries ride out a leader change; longer outages are the relay loop's
			// job, which backs off further and keeps Close and shutdown prompt.
			MaxAttempts:            3,
			AllowAutoTopicCreation: true,
		},
	}
}

// Run publishes until ctx is done, then returns nil. Broker and database failures are logged and
// retried with backoff; the rows stay in the table meanwhile, so nothing is lost. It fails only when
// the configuration cannot work.
func (r *Relay) Run(ctx context.Context) error {
	if len(r.cfg.Brokers) == 0 {
		return errors.New("outbox: relay needs at least one broker")
	}
	backoff := minBackoff
	var nextPrune time.Time
	for {
		if now := time.Now(); !now.Before(nextPrune) {
			r.prune(ctx)
			nextPrune = now.Add(pruneEvery)
		}
		full, err := r.publishBatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := r.cfg.PollInterval
		switch {
		case err != nil:
			r.log.Warn("outbox: batch not published, rows stay queued", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, maxBackoff)
		case full:
			backoff = minBackoff
			continue
		default:
			backoff = minBackoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Close closes the Kafka writer once Run has returned.
func (r *Relay) Close() error {
	err := r.kafka.Close()
	r.transport.CloseIdleConnections()
	return err
}

// selectBatch locks the oldest unsent rows that this replica may publish now. SKIP LOCKED lets
// replicas take disjoint batches; a row whose key has an earlier unsent row outside this batch (one
// locked by another replica) is left out, since publishing it could overtake that row. The bound by
// the batch's last id keeps that check to the batch's range of the index instead of the whole backlog.
const selectBatch = `
WITH candidates AS MATERIALIZED (
    SELECT id, topic, key, payload, traceparent FROM outbox
    WHERE published_at IS NULL
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
SELECT c.id, c.topic, c.key, c.payload, coalesce(c.traceparent, '')
FROM candidates c
WHERE NOT EXISTS (
    SELECT 1 FROM outbox earlier
    WHERE earlier.published_at IS NULL
      AND earlier.key = c.key
      AND earlier.id < c.id
      AND earlier.id < (SELECT max(id) FROM candidates)
      AND earlier.id NOT IN (SELECT id FROM candidates)
)
ORDER BY c.id`

// publishBatch publishes one batch and marks it sent in the transaction holding its row locks; on any
// failure the transaction rolls back and the rows wait for the next attempt. full reports that more
// rows are probably waiting, so the caller should not sleep; rows held back for another replica do
// not count, since that replica is publishing their predecessors right now.
func (r *Relay) publishBatch(ctx context.Context) (full bool, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchDeadline)
	defer cancel()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit; after a failure the rows wait anyway

	rows, err := tx.Query(ctx, selectBatch, r.cfg.BatchSize)
	if err != nil {
		return false, err
	}
	var (
		ids      []int64
		messages []kafka.Message
		bytes    int
	)
	for rows.Next() {
		var (
			id                      int64
			topic, key, traceparent string
			payload                 []byte
		)
		if err := rows.Scan(&id, &topic, &key, &payload, &traceparent); err != nil {
			rows.Close()
			return false, err
		}
		m := message(key, payload, traceparent)
		m.Topic = topic
		// Rows past the byte limit wait for the next round (a suffix in id order keeps key order).
		if bytes += wireSize(m); bytes > maxBatchBytes && len(messages) > 0 {
			full = true
			break
		}
		ids, messages = append(ids, id), append(messages, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if len(messages) == 0 {
		return false, nil
	}

	if err := r.kafka.WriteMessages(ctx, messages...); err != nil {
		return false, fmt.Errorf("publish %d events: %w", len(messages), summarize(err))
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET published_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return false, fmt.Errorf("mark %d published events: %w", len(ids), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("mark %d published events: %w", len(ids), err)
	}
	return full || len(messages) == r.cfg.BatchSize, nil
}

// summarize shortens kafka-go's report of one error per message, mostly the same one repeated, to
// the first error and a count, so that a broker outage logs one readable line per attempt.
func summarize(err error) error {
	var perMessage kafka.WriteErrors
	if !errors.As(err, &perMessage) {
		return err
	}
	for _, e := range perMessage {
		if e != nil {
			return fmt.Errorf("%d failed, first: %w", perMessage.Count(), e)
		}
	}
	return err
}

// prune deletes rows published longer ago than the retention, which are kept only to answer "was
// this event sent, and when" while investigating.
func (r *Relay) prune(ctx context.Context) {
	tag, err := r.pool.Exec(ctx,
		`DELETE FROM outbox WHERE published_at < now() - $1 * interval '1 microsecond'`,
		r.cfg.Retention.Microseconds())
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("outbox: prune published events", "err", err)
		}
		return
	}
	if n := tag.RowsAffected(); n > 0 {
		r.log.Debug("outbox: pruned published events", "rows", n)
	}
}

// message is the Kafka form of an outbox row: the structured CloudEvent as value, the aggregate id as
// key, and the headers consumers need before parsing the value.
func message(key string, payload []byte, traceparent string) kafka.Message {
	m := kafka.Message{
		Key:     []byte(key),
		Value:   payload,
		Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/cloudevents+json")}},
	}
	if traceparent != "" {
		m.Headers = append(m.Headers, kafka.Header{Key: "traceparent", Value: []byte(traceparent)})
	}
	return m
}

// wireSize is an upper bound of the bytes kafka-go counts for m against BatchBytes, so batches cut
// by it never spill into a second produce request.
func wireSize(m kafka.Message) int {
	n := 64 + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += 16 + len(h.Key) + len(h.Value)
	}
	return n
}
