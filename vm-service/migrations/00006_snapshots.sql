-- +goose Up
-- VMs' snapshots. libvirt holds their data (inside the VM's qcow2 disk) and its own record of each;
-- these rows hold what the API shows and libvirt's name (machine_name). A row is written before
-- libvirt takes the snapshot (taken = false), so that its name and its place under the per-VM limit
-- are held under the VM's row lock and a crash in between leaves a row the resync settles, never a
-- libvirt snapshot nobody knows of. A VM's deletion takes its rows along.
CREATE TABLE snapshots (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vm_id        bigint      NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    state        text        NOT NULL CHECK (state IN ('Running', 'Stopped', 'Paused', 'Error')),
    cpu          integer     NOT NULL,
    memory_mib   integer     NOT NULL,
    machine_name text        NOT NULL,
    taken        boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    CONSTRAINT snapshots_vm_name_key UNIQUE (vm_id, name),
    CONSTRAINT snapshots_vm_machine_key UNIQUE (vm_id, machine_name)
);
-- The sequence of snapshot events. Each is drawn under the VM's row lock, so a VM's snapshot events
-- are numbered in the order they commit.
CREATE SEQUENCE snapshot_events;

-- +goose Down
DROP SEQUENCE snapshot_events;
DROP TABLE snapshots;
