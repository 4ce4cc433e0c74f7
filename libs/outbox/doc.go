// Package outbox publishes a service's domain events to Kafka without losing or reordering them: the
// service records each event in its own Postgres schema inside the transaction that changes the
// aggregate (Writer), and a Relay later publishes the recorded rows in order and marks them sent.
//
// Delivery is at least once. A batch that reached the broker but whose "sent" mark was not committed
// (database failure, crash) is published again, so consumers de-duplicate by the CloudEvents id or by
// the per-aggregate sequence. Events of one aggregate share a Kafka key, land on one partition and
// reach it in the order they were recorded, also when several replicas run a Relay on the same table.
package outbox
