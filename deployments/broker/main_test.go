package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestParseOptions_Defaults(t *testing.T) {
	for _, k := range []string{"LIMEN_KAFKA_ADDR", "LIMEN_KAFKA_TOPICS", "LIMEN_KAFKA_PARTITIONS", "LIMEN_KAFKA_AUTO_CREATE", "LIMEN_KAFKA_DATA_DIR", "LIMEN_KAFKA_LOG_LEVEL"} {
		t.Setenv(k, "")
	}
	o, err := parseOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.addrs) != 1 || o.addrs[0] != "127.0.0.1:19092" || o.partitions != 3 || !o.autoCreate ||
		strings.Join(o.topics, ",") != "limen.vm.events,limen.media.events,limen.user.events" {
		t.Fatalf("unexpected defaults: %+v", o)
	}
}

func TestParseOptions_EnvAndFlags(t *testing.T) {
	t.Setenv("LIMEN_KAFKA_ADDR", "127.0.0.1:1")
	t.Setenv("LIMEN_KAFKA_PARTITIONS", "5")
	o, err := parseOptions([]string{"-addr", "127.0.0.1:2, 127.0.0.1:3", "-auto-create=false", "-topics", ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.addrs) != 2 || o.addrs[1] != "127.0.0.1:3" || o.partitions != 5 || o.autoCreate || len(o.topics) != 0 {
		t.Fatalf("flags must win over env: %+v", o)
	}
	for _, bad := range [][]string{{"-addr", "nohostport"}, {"-partitions", "0"}, {"-log-level", "loud"}, {"extra"}} {
		if _, err := parseOptions(bad); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

// The broker must listen where it is told, pre-create the LIMEN topics with the requested partition
// count, auto-create others, and round-trip a record.
func TestBroker_TopicsAndRoundTrip(t *testing.T) {
	o, err := parseOptions([]string{"-addr", "127.0.0.1:0", "-partitions", "3"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(clusterOptions(o, slog.New(slog.NewTextHandler(io.Discard, nil)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		t.Fatalf("want one broker, got %v", addrs)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("limen.vm.events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	req := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{"limen.vm.events", "limen.media.events"} {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range resp.Topics {
		if tp.ErrorCode != 0 || len(tp.Partitions) != 3 {
			t.Errorf("topic %s: error %d, %d partitions; want 0, 3", *tp.Topic, tp.ErrorCode, len(tp.Partitions))
		}
	}

	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "limen.vm.events", Key: []byte("vm-1"), Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auto.created", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to an auto-created topic: %v", err)
	}
	fetches := cl.PollFetches(ctx)
	if errs := fetches.Errors(); len(errs) > 0 {
		t.Fatalf("fetch: %v", errs)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Value) != "hello" || string(recs[0].Key) != "vm-1" {
		t.Fatalf("want the record back, got %d records", len(recs))
	}
}
