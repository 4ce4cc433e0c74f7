-- +goose Up
-- payload is the CloudEvent exactly as published (bytea keeps it byte for byte); to look inside:
-- SELECT convert_from(payload, 'UTF8')::jsonb FROM outbox WHERE published_at IS NULL;
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    payload      bytea       NOT NULL,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- The relay's queue: only unsent rows, in id order.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- +goose Down
DROP TABLE outbox;
