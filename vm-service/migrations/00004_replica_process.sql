-- +goose Up
-- Which operating-system process each replica is (procfs.Process): a replica starting up on the same
-- machine (same kernel boot and PID namespace) releases at once the claims of a process that is no
-- longer running there, whatever the age of its last heartbeat. NULL: not known (older versions, or no
-- Linux /proc), judged by the heartbeat alone.
ALTER TABLE replicas ADD COLUMN boot_id text, ADD COLUMN pid_ns text, ADD COLUMN pid integer, ADD COLUMN proc_start bigint;

-- +goose Down
ALTER TABLE replicas DROP COLUMN boot_id, DROP COLUMN pid_ns, DROP COLUMN pid, DROP COLUMN proc_start;
