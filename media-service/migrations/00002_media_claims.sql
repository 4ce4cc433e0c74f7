-- +goose Up
-- Drive changes and ISO deletions in progress (see the postgres adapter's claims.go). A claim is
-- taken and ended in short transactions around the hypervisor call, never held open across it; one
-- whose replica died expires.
CREATE TABLE media_claims (
    token      uuid PRIMARY KEY,
    vm_uuid    uuid UNIQUE,                -- a drive change, one at a time per VM; NULL: a deletion
    iso_name   text        NOT NULL,       -- the ISO attached or deleted; '' for an eject
    deleting   boolean     NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK (deleting = (vm_uuid IS NULL))
);
CREATE INDEX media_claims_iso ON media_claims (iso_name);
CREATE UNIQUE INDEX media_claims_one_deletion ON media_claims (iso_name) WHERE deleting;

-- +goose Down
DROP TABLE media_claims;
