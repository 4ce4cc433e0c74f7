// Package kafka reads vm-service's VM events into quota-service, in a consumer group of its own: the
// replicas share the partitions, and a restarted one goes on where the group stopped (a new group
// starts at the beginning, so it learns every VM the topic still holds).
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"

	"limen/libs/contract"
	"limen/quota-service/internal/app"
	"limen/quota-service/internal/domain"
)

// GroupID is quota-service's consumer group on contract.TopicVMEvents.
const GroupID = "quota-service"

// retryMax bounds the wait between attempts to apply an event the database did not take.
const retryMax = 5 * time.Second

// VMEvents applies every VM event in order per VM, at least once: an event is committed to the group
// only once Apply took it, and applying one again changes nothing (the newer version wins).
type VMEvents struct {
	Brokers []string
	Apply   func(context.Context, app.ApplyVMEvent) error
	Log     *slog.Logger
}

// Run reads until ctx ends; brokers that do not answer are retried.
func (c *VMEvents) Run(ctx context.Context) error {
	reader := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: c.Brokers, GroupID: GroupID, Topic: contract.TopicVMEvents, StartOffset: kafkago.FirstOffset,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: time.Second,
		// Offsets go out once a second rather than one round trip per event; after a crash the
		// events since are applied again, which changes nothing.
		CommitInterval: time.Second,
	})
	defer reader.Close()
	var lastErr string
	for {
		m, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err.Error() != lastErr {
				c.Log.Warn("reading VM events", "topic", contract.TopicVMEvents, "err", err)
				lastErr = err.Error()
			}
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		lastErr = ""
		e, ok, err := decode(m.Value)
		switch {
		case err != nil:
			c.Log.Warn("skipping a VM event that does not decode", "partition", m.Partition, "offset", m.Offset, "err", err)
		case ok:
			if !c.apply(ctx, e) {
				return nil
			}
		}
		if err := reader.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			c.Log.Warn("committing VM event offsets", "err", err)
		}
	}
}

// apply retries e until the database takes it; false when ctx ended first.
func (c *VMEvents) apply(ctx context.Context, e app.ApplyVMEvent) bool {
	wait := 100 * time.Millisecond
	for {
		err := c.Apply(ctx, e)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.Log.Warn("applying a VM event failed; retrying", "vm_uuid", e.VM.UUID, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
		wait = min(2*wait, retryMax)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// event is the part of a CloudEvent quota-service reads.
type event struct {
	Type     string          `json:"type"`
	Subject  string          `json:"subject"`
	OwnerID  int64           `json:"ownerid"`
	Sequence int64           `json:"sequence"`
	Data     json.RawMessage `json:"data"`
}

// vmData is the part of a VM event's data (the VM as the API shows it) quota-service reads.
type vmData struct {
	OwnerID int64 `json:"owner_id"`
	CPU     int   `json:"cpu"`
	Memory  int   `json:"memory"`
}

// decode reads a VM event; false for event types quota-service has no use for.
func decode(value []byte) (app.ApplyVMEvent, bool, error) {
	var e event
	if err := json.Unmarshal(value, &e); err != nil {
		return app.ApplyVMEvent{}, false, err
	}
	if e.Type != contract.TypeVMUpdated && e.Type != contract.TypeVMDeleted {
		return app.ApplyVMEvent{}, false, nil
	}
	id, err := uuid.Parse(e.Subject)
	if err != nil {
		return app.ApplyVMEvent{}, false, fmt.Errorf("subject: %w", err)
	}
	if e.Type == contract.TypeVMDeleted {
		if e.OwnerID < 1 {
			return app.ApplyVMEvent{}, false, errors.New("no ownerid")
		}
		return app.ApplyVMEvent{VM: domain.VMState{UUID: id, OwnerID: e.OwnerID, Version: e.Sequence}, Deleted: true}, true, nil
	}
	var d vmData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return app.ApplyVMEvent{}, false, fmt.Errorf("data: %w", err)
	}
	if d.OwnerID < 1 {
		return app.ApplyVMEvent{}, false, errors.New("no owner_id")
	}
	vm, err := domain.NewVMState(id, d.OwnerID, d.CPU, d.Memory, e.Sequence)
	return app.ApplyVMEvent{VM: vm}, err == nil, err
}
