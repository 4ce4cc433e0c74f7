-- +goose Up
-- Every attach and eject: who changed which VM's drive to what, and when.
CREATE TABLE media_changes (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vm_uuid  uuid        NOT NULL,
    owner_id bigint      NOT NULL,
    actor_id bigint      NOT NULL,
    action   text        NOT NULL CHECK (action IN ('attach', 'detach')),
    iso_path text        NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX media_changes_vm ON media_changes (vm_uuid, id);

-- +goose Down
DROP TABLE media_changes;
