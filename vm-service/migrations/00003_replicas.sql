-- +goose Up
-- The vm-service processes and their heartbeats. A VM's task names the process that claimed it
-- (task_owner); the claim blocks other actions only while that process heartbeats, so a crash frees its
-- VMs within a few heartbeats instead of a fixed age. No foreign key: a dead process's row is deleted
-- once its claims are released, and a claim naming a missing process is dead.
CREATE TABLE replicas (
    id           uuid        PRIMARY KEY,
    host         text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE vms ADD COLUMN task_owner uuid;

-- +goose Down
ALTER TABLE vms DROP COLUMN task_owner;
DROP TABLE replicas;
