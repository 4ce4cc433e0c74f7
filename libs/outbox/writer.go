package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"
)

// Event is one state change of an aggregate, published as a CloudEvents 1.0 structured-JSON message.
type Event struct {
	Topic    string // e.g. "limen.vm.events"
	Type     string // e.g. "limen.vm.updated", "limen.vm.deleted"
	Subject  string // aggregate id (VM uuid); also the Kafka message key
	OwnerID  int64  // CloudEvents extension "ownerid"
	Sequence int64  // CloudEvents extension "sequence" (per aggregate, increasing)
	Data     any    // marshalled as JSON into "data"
}

// Writer records events inside the caller's transaction, so an event exists exactly when the state
// change it describes was committed.
type Writer struct {
	source string
}

// NewWriter returns a Writer stamping its events with source (the CloudEvents "source", e.g.
// "vm-service"), which tells consumers which service produced them.
func NewWriter(source string) *Writer {
	return &Writer{source: source}
}

// traceContext is W3C Trace Context on its own, whatever global propagator the service configured,
// because the traceparent column and header carry exactly that.
var traceContext propagation.TraceContext

// Add builds the CloudEvent for e (a new uuid id, the current time, datacontenttype application/json)
// and stores it in tx together with the W3C traceparent of ctx's span, if any, so the trace continues
// through the broker.
//
// The relay publishes one aggregate's events in the order their rows were inserted, which is their
// commit order only if transactions touching the aggregate serialise: call Add after the aggregate's
// row has been updated (and so locked) in tx.
//
// CloudEvents integers are 32-bit, so OwnerID and Sequence outside the int32 range are rejected.
func (w *Writer) Add(ctx context.Context, tx pgx.Tx, e Event) error {
	if e.Topic == "" || e.Subject == "" {
		return errors.New("outbox: event needs a topic and a subject")
	}
	ce := cloudevents.New()
	ce.SetID(uuid.NewString())
	ce.SetSource(w.source)
	ce.SetType(e.Type)
	ce.SetSubject(e.Subject)
	ce.SetTime(time.Now().UTC())
	ce.SetExtension("ownerid", e.OwnerID)
	ce.SetExtension("sequence", e.Sequence)
	if err := ce.SetData(cloudevents.ApplicationJSON, e.Data); err != nil {
		return fmt.Errorf("outbox: encode %s data: %w", e.Type, err)
	}
	if err := ce.Validate(); err != nil {
		return fmt.Errorf("outbox: %s event: %w", e.Type, err)
	}
	payload, err := json.Marshal(ce)
	if err != nil {
		return fmt.Errorf("outbox: encode %s event: %w", e.Type, err)
	}

	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	traceparent := carrier.Get("traceparent")

	// An event that cannot fit in one produce request would never be published and would hold back
	// every later event; refusing it here fails the request that caused it instead.
	if size := wireSize(message(e.Subject, payload, traceparent)); size > maxBatchBytes {
		return fmt.Errorf("outbox: %s event for %s is %d bytes, more than the %d a Kafka batch takes",
			e.Type, e.Subject, size, maxBatchBytes)
	}

	_, err = tx.Exec(ctx,
		`INSERT INTO outbox (topic, key, payload, traceparent) VALUES ($1, $2, $3, NULLIF($4, ''))`,
		e.Topic, e.Subject, payload, traceparent)
	if err != nil {
		return fmt.Errorf("outbox: record %s event: %w", e.Type, err)
	}
	return nil
}
