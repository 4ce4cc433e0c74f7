// Package kafka feeds the gateway's live status hub from the event topics. Every gateway replica reads
// every partition itself, with no consumer group, so any replica can serve any client; it starts at
// the end of each partition, since a client needs only what happens after it connected (it gets the
// current state as a list).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"limen/gateway/internal/domain"
	"limen/libs/contract"
)

// DefaultRecheck is how often the partition list is read again to pick up new partitions and topics.
const DefaultRecheck = 30 * time.Second

// Sink takes each decoded event; the live status hub.
type Sink interface {
	Publish(domain.VMEvent)
}

// Consumer reads the topics' partitions and publishes their events to the sink.
type Consumer struct {
	Brokers []string
	Topics  []string
	Sink    Sink
	Log     *slog.Logger
	// Recheck is how often partitions are listed again (0: DefaultRecheck).
	Recheck time.Duration
	// MaxWait is how long the broker may hold a fetch open waiting for new events (0: 1 s). Events are
	// answered at once; it bounds idle polling, and how long stopping a reader may take.
	MaxWait time.Duration

	readyOnce sync.Once
	ready     chan struct{}
}

// NewConsumer reads, from the brokers, the topics vm-service and media-service publish VM changes on.
func NewConsumer(brokers []string, sink Sink, log *slog.Logger) *Consumer {
	return &Consumer{Brokers: brokers, Topics: []string{contract.TopicVMEvents, contract.TopicMediaEvents}, Sink: sink, Log: log,
		ready: make(chan struct{})}
}

// Ready is closed once every partition that existed at the first successful look is being read:
// every event produced after that reaches the sink.
func (c *Consumer) Ready() <-chan struct{} { return c.ready }

type topicPartition struct {
	topic     string
	partition int
}

// Run reads until ctx ends. Brokers that do not answer are retried at every recheck.
func (c *Consumer) Run(ctx context.Context) error {
	recheck := c.Recheck
	if recheck <= 0 {
		recheck = DefaultRecheck
	}
	client := &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Timeout: 10 * time.Second}
	s := &scan{running: map[topicPartition]bool{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	ticker := time.NewTicker(recheck)
	defer ticker.Stop()
	var lastErr string
	for {
		err := c.scan(ctx, client, s, &wg)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && err.Error() != lastErr:
			c.Log.Warn("reading event partitions", "err", err)
		case err == nil && lastErr != "":
			c.Log.Info("event partitions readable again")
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// scan remembers what the consumer has seen of the cluster.
type scan struct {
	// atStart are the partitions of the first successful look: they are read from their end. Any
	// partition or topic that appears later was created after the gateway started, so all its events
	// are new and it is read from its beginning.
	atStart map[topicPartition]bool
	running map[topicPartition]bool
}

func (s *scan) readingAllOf(partitions map[topicPartition]bool) bool {
	for tp := range partitions {
		if !s.running[tp] {
			return false
		}
	}
	return true
}

func (c *Consumer) scan(ctx context.Context, client *kafkago.Client, s *scan, wg *sync.WaitGroup) error {
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: c.Topics})
	if err != nil {
		return err
	}
	var errs []error
	var fresh []topicPartition
	present := map[topicPartition]bool{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			errs = append(errs, fmt.Errorf("topic %s: %w", t.Name, t.Error))
			continue
		}
		for _, p := range t.Partitions {
			tp := topicPartition{t.Name, p.ID}
			present[tp] = true
			if !s.running[tp] {
				fresh = append(fresh, tp)
			}
		}
	}
	if s.atStart == nil {
		s.atStart = present
	}
	offsets, err := c.startOffsets(ctx, client, fresh, s.atStart)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, tp := range fresh {
		offset, ok := offsets[tp]
		if !ok {
			continue // its offset was not listed; the next recheck tries again
		}
		reader := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: c.Brokers, Topic: tp.topic, Partition: tp.partition,
			MinBytes: 1, MaxBytes: 4 << 20, MaxWait: c.maxWait(),
		})
		if err := reader.SetOffset(offset); err != nil {
			reader.Close()
			errs = append(errs, err)
			continue
		}
		s.running[tp] = true
		wg.Go(func() { c.read(ctx, reader, tp) })
	}
	if s.readingAllOf(s.atStart) {
		c.readyOnce.Do(func() { close(c.ready) })
	}
	return errors.Join(errs...)
}

func (c *Consumer) maxWait() time.Duration {
	if c.MaxWait > 0 {
		return c.MaxWait
	}
	return time.Second
}

// startOffsets resolves where each fresh partition is read from: the concrete end offset of a
// partition that existed at start (so that Ready means what it says), the beginning of a newer one.
func (c *Consumer) startOffsets(ctx context.Context, client *kafkago.Client, fresh []topicPartition, atStart map[topicPartition]bool) (map[topicPartition]int64, error) {
	out := map[topicPartition]int64{}
	ask := map[string][]kafkago.OffsetRequest{}
	for _, tp := range fresh {
		if atStart[tp] {
			ask[tp.topic] = append(ask[tp.topic], kafkago.LastOffsetOf(tp.partition))
		} else {
			out[tp] = kafkago.FirstOffset
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	resp, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: ask})
	if err != nil {
		return out, err
	}
	var errs []error
	for topic, partitions := range resp.Topics {
		for _, p := range partitions {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("offset of %s/%d: %w", topic, p.Partition, p.Error))
				continue
			}
			out[topicPartition{topic, p.Partition}] = p.LastOffset
		}
	}
	return out, errors.Join(errs...)
}

// read publishes one partition's events until ctx ends. A message that is not a valid event is
// logged and skipped: one bad producer must not stop the feed.
func (c *Consumer) read(ctx context.Context, reader *kafkago.Reader, tp topicPartition) {
	defer reader.Close()
	tracer := otel.Tracer("limen/gateway/kafka")
	for {
		m, err := reader.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.Log.Warn("reading events", "topic", tp.topic, "partition", tp.partition, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		e, err := decode(m.Value)
		if errors.Is(err, errIgnoredType) {
			continue
		}
		if err != nil {
			c.Log.Warn("skipping event", "topic", tp.topic, "partition", tp.partition, "offset", m.Offset, "err", err)
			continue
		}
		// Continue the producer's trace (traceparent travels in the message headers).
		msgCtx := otel.GetTextMapPropagator().Extract(ctx, headerCarrier(m.Headers))
		_, span := tracer.Start(msgCtx, tp.topic+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", tp.topic),
				attribute.String("messaging.message.id", e.ID)))
		c.Sink.Publish(e)
		span.End()
	}
}

// headerCarrier lets the propagator read Kafka message headers.
type headerCarrier []kafkago.Header

func (h headerCarrier) Get(key string) string {
	for _, kv := range h {
		if kv.Key == key {
			return string(kv.Value)
		}
	}
	return ""
}

func (h headerCarrier) Set(string, string) {}

func (h headerCarrier) Keys() []string {
	keys := make([]string, len(h))
	for i, kv := range h {
		keys[i] = kv.Key
	}
	return keys
}
