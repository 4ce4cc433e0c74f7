package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"limen/libs/contract"
)

// rescan is how often the topic's partitions are listed again (a topic that does not exist yet, or
// new partitions).
const rescan = 5 * time.Second

// Follower reads the user events topic from the beginning of every partition into a List, with no consumer group:
// every replica of every service keeps the whole state.
type Follower struct {
	Brokers []string
	List    *List
	Log     *slog.Logger

	caughtUp     chan struct{}
	caughtUpOnce sync.Once
}

// NewFollower follows the brokers' user events topic into list.
func NewFollower(brokers []string, list *List, log *slog.Logger) *Follower {
	return &Follower{Brokers: brokers, List: list, Log: log, caughtUp: make(chan struct{})}
}

// CaughtUp is closed once every partition has been read up to where it stood when it was first
// seen: from then on, every change published before is applied.
func (f *Follower) CaughtUp() <-chan struct{} { return f.caughtUp }

// Ready is a readiness check: a service should not trust tokens before it knows their revocations.
func (f *Follower) Ready(context.Context) error {
	select {
	case <-f.caughtUp:
		return nil
	default:
		return errors.New("revocations not read yet")
	}
}

// Run follows until ctx ends; brokers that do not answer are retried.
func (f *Follower) Run(ctx context.Context) error {
	client := &kafkago.Client{Addr: kafkago.TCP(f.Brokers...), Timeout: 10 * time.Second}
	running := map[int]bool{}
	var pending sync.WaitGroup // partitions still reading up to their start-time end
	var wg sync.WaitGroup
	defer wg.Wait()
	first := true
	for {
		fresh, ends, err := f.partitions(ctx, client, running)
		if err != nil && ctx.Err() == nil {
			f.Log.Warn("listing revocation partitions", "topic", contract.TopicUserEvents, "err", err)
		}
		for _, p := range fresh {
			running[p] = true
			pending.Add(1)
			wg.Go(func() { f.read(ctx, p, ends[p], pending.Done) })
		}
		if first && err == nil {
			first = false
			go func() { pending.Wait(); f.caughtUpOnce.Do(func() { close(f.caughtUp) }) }()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(rescan):
		}
	}
}

// partitions lists the topic's partitions not yet read, with their current end offsets. A topic
// that does not exist yet has none: nothing was ever revoked.
func (f *Follower) partitions(ctx context.Context, client *kafkago.Client, running map[int]bool) ([]int, map[int]int64, error) {
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{contract.TopicUserEvents}})
	if err != nil {
		return nil, nil, err
	}
	var fresh []int
	var ask []kafkago.OffsetRequest
	for _, t := range meta.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafkago.UnknownTopicOrPartition) {
				return nil, nil, nil
			}
			return nil, nil, t.Error
		}
		for _, p := range t.Partitions {
			if !running[p.ID] {
				fresh = append(fresh, p.ID)
				ask = append(ask, kafkago.LastOffsetOf(p.ID))
			}
		}
	}
	if len(fresh) == 0 {
		return nil, nil, nil
	}
	resp, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{contract.TopicUserEvents: ask}})
	if err != nil {
		return nil, nil, err
	}
	ends := map[int]int64{}
	for _, p := range resp.Topics[contract.TopicUserEvents] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("end of %s/%d: %w", contract.TopicUserEvents, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	return fresh, ends, nil
}

// event is the part of a CloudEvent the follower reads.
type event struct {
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// read applies one partition from its beginning; reached is called once the offset that was the
// end when the partition was listed has been read.
func (f *Follower) read(ctx context.Context, partition int, end int64, reached func()) {
	var once sync.Once
	done := func() { once.Do(reached) }
	defer done()
	if end <= 0 {
		done()
	}
	reader := kafkago.NewReader(kafkago.ReaderConfig{Brokers: f.Brokers, Topic: contract.TopicUserEvents, Partition: partition,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond})
	defer reader.Close()
	if err := reader.SetOffset(kafkago.FirstOffset); err != nil {
		f.Log.Warn("revocations", "partition", partition, "err", err)
		return
	}
	for {
		m, err := reader.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.Log.Warn("reading revocations", "partition", partition, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		var e event
		var c contract.UserChange
		if err := json.Unmarshal(m.Value, &e); err != nil || json.Unmarshal(e.Data, &c) != nil {
			f.Log.Warn("skipping a revocation event that does not decode", "partition", partition, "offset", m.Offset)
		} else {
			f.List.Apply(e.Type, c, e.Time)
		}
		if m.Offset+1 >= end {
			done()
		}
	}
}
