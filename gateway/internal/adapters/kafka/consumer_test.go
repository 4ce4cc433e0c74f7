package kafka

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"limen/gateway/internal/domain"
	"limen/libs/contract"
)

type collected struct {
	mu     sync.Mutex
	events []domain.VMEvent
	got    chan struct{}
}

func newCollected() *collected { return &collected{got: make(chan struct{}, 1000)} }

func (c *collected) Publish(e domain.VMEvent) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	c.got <- struct{}{}
}

func (c *collected) waitFor(t *testing.T, n int) []domain.VMEvent {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		c.mu.Lock()
		if len(c.events) >= n {
			out := append([]domain.VMEvent(nil), c.events...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.got:
		case <-deadline:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("got %d events, want %d", len(c.events), n)
		}
	}
}

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// writer has a transport of its own with a short metadata TTL, so that it finds a topic created
// meanwhile at once, and no batching delay.
func writer(addrs []string, topic string) *kafkago.Writer {
	return &kafkago.Writer{Addr: kafkago.TCP(addrs...), Topic: topic, Balancer: &kafkago.Hash{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireAll,
		Transport: &kafkago.Transport{MetadataTTL: 100 * time.Millisecond}}
}

func produce(t *testing.T, w *kafkago.Writer, key string, values ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs := make([]kafkago.Message, len(values))
	for i, v := range values {
		msgs[i] = kafkago.Message{Key: []byte(key), Value: v}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T, addrs []string, sink Sink) *Consumer {
	t.Helper()
	c := NewConsumer(addrs, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.Recheck, c.MaxWait = 100*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-c.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("consumer not ready")
	}
	return c
}

func TestConsumer_ReadsEveryPartitionFromItsEnd(t *testing.T) {
	kc := cluster(t, kfake.SeedTopics(3, contract.TopicVMEvents, contract.TopicMediaEvents))
	w := writer(kc.ListenAddrs(), "limen.vm.events")
	defer w.Close()
	// History from before the gateway started is not replayed.
	for i := range 6 {
		uuid := strconv.Itoa(i) + vmUUID[1:]
		produce(t, w, uuid, cloudEvent(t, contract.TypeVMUpdated, uuid, 7, 1, vmJSON(int64(i), uuid, 7)))
	}
	sink := newCollected()
	start(t, kc.ListenAddrs(), sink)

	var want []string
	for i := range 6 { // keys spread over the three partitions
		uuid := strconv.Itoa(i) + vmUUID[1:]
		want = append(want, uuid)
		produce(t, w, uuid, []byte("not an event"), cloudEvent(t, contract.TypeVMUpdated, uuid, 7, 2, vmJSON(int64(i), uuid, 7)))
	}
	got := sink.waitFor(t, 6)
	time.Sleep(100 * time.Millisecond)
	if n := len(sink.waitFor(t, 0)); n != 6 {
		t.Fatalf("got %d events, want 6", n)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if e.Seq != 2 {
			t.Fatalf("old event replayed: %+v", e)
		}
		seen[e.VMUUID] = true
	}
	for _, uuid := range want {
		if !seen[uuid] {
			t.Errorf("missing %s", uuid)
		}
	}
}

func TestConsumer_TopicCreatedLaterIsReadFromItsBeginning(t *testing.T) {
	kc := cluster(t, kfake.SeedTopics(2, "limen.vm.events"))
	sink := newCollected()
	start(t, kc.ListenAddrs(), sink)

	client := &kafkago.Client{Addr: kafkago.TCP(kc.ListenAddrs()...)}
	resp, err := client.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{
		{Topic: "limen.media.events", NumPartitions: 2, ReplicationFactor: 1}}})
	if err != nil || resp.Errors["limen.media.events"] != nil {
		t.Fatal(err, resp.Errors)
	}
	w := writer(kc.ListenAddrs(), "limen.media.events")
	defer w.Close()
	// Written at once, likely before the consumer's next look: it must still arrive.
	produce(t, w, vmUUID, cloudEvent(t, contract.TypeMediaChanged, vmUUID, 7, 1, map[string]any{"vm_uuid": vmUUID, "media_path": "/isos/a.iso", "attached": true}))
	if e := sink.waitFor(t, 1)[0]; e.Kind != domain.MediaChanged || e.Media.Path != "/isos/a.iso" {
		t.Fatalf("%+v", e)
	}
}

func TestConsumer_NoBrokerIsNeverReady(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := NewConsumer([]string{addr}, newCollected(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.Recheck = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Ready():
		t.Fatal("ready without a broker")
	default:
	}
}
