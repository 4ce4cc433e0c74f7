-- +goose Up
CREATE TABLE vms (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid          uuid        NOT NULL UNIQUE,
    owner_id      bigint      NOT NULL,
    name          text        NOT NULL,
    cpu           integer     NOT NULL CHECK (cpu BETWEEN 1 AND 64),
    memory_mib    integer     NOT NULL CHECK (memory_mib BETWEEN 64 AND 262144),
    os_type       text        NOT NULL,
    disk_gb       integer     NOT NULL CHECK (disk_gb > 0),
    status        text        NOT NULL CHECK (status IN ('Running', 'Stopped', 'Paused', 'Error')),
    status_reason text        NOT NULL DEFAULT '',
    host          text        NOT NULL DEFAULT '',
    task          text        NOT NULL DEFAULT '',
    task_since    timestamptz,
    version       bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT vms_owner_name_key UNIQUE (owner_id, name)
);

-- +goose Down
DROP TABLE vms;
