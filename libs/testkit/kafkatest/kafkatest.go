// Package kafkatest reads back what a test's code published to a broker.
package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Within is how long Read waits for what it is asked for.
const Within = 15 * time.Second

// Read reads topic from its start and decodes each record, keeping those decode accepts, until done
// holds for the kept ones; the test fails when that has not happened Within.
func Read[E any](t testing.TB, brokers []string, topic string, decode func(*kgo.Record) (E, bool), done func(kept []E) bool) []E {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Within)
	defer cancel()
	var kept []E
	for !done(kept) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if e, ok := decode(r); ok {
				kept = append(kept, e)
			}
		})
	}
	if !done(kept) {
		t.Fatalf("kafkatest: %s: not done within %s; read %+v", topic, Within, kept)
	}
	return kept
}
