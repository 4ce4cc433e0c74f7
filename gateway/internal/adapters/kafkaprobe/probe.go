// Package kafkaprobe checks that a Kafka cluster answers.
package kafkaprobe

import (
	"context"
	"errors"

	"github.com/segmentio/kafka-go"
)

// Probe implements app.BrokerProbe: the cluster is up when any broker returns its metadata.
type Probe struct {
	Brokers []string
}

func (p Probe) Ping(ctx context.Context) error {
	var errs []error
	for _, addr := range p.Brokers {
		conn, err := (&kafka.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deadline, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(deadline)
		}
		_, err = conn.Brokers()
		conn.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
