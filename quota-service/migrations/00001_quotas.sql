-- +goose Up
-- One row per user: the limits, and what the user holds. vms, cpu and memory are the sum of the
-- user's live VMs (table vms) and of the growth of their pending reservations; every statement that
-- changes either changes them too, in the same transaction, after taking this row's lock. So one
-- conditional UPDATE of this row admits a reservation or refuses it, and no two admissions ever see
-- the same usage. Usage may exceed a limit (an admin lowered it, or VMs existed before): only growth
-- is refused.
CREATE TABLE quotas (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint      NOT NULL UNIQUE CHECK (user_id > 0),
    max_vms    bigint      NOT NULL CHECK (max_vms >= 0),
    max_cpu    bigint      NOT NULL CHECK (max_cpu >= 0),
    max_memory bigint      NOT NULL CHECK (max_memory >= 0),
    vms        bigint      NOT NULL DEFAULT 0 CHECK (vms >= 0),
    cpu        bigint      NOT NULL DEFAULT 0 CHECK (cpu >= 0),
    memory     bigint      NOT NULL DEFAULT 0 CHECK (memory >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50); -- room on each page, so the frequent usage updates stay heap-only (HOT)

-- Changes of usage asked for by a peer service (vms, cpu, memory: the change, signed). A pending
-- one holds its growth (the positive parts) in its user's quota until it is committed, released or
-- expired; ended ones are kept a while so that a repeated key counts once.
CREATE TABLE reservations (
    key        text        COLLATE "C" PRIMARY KEY, -- compared byte by byte: faster, and no locale to depend on
    user_id    bigint      NOT NULL,
    vm_uuid    uuid        NOT NULL,
    vms        bigint      NOT NULL,
    cpu        bigint      NOT NULL,
    memory     bigint      NOT NULL,
    state      text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'committed', 'released', 'expired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    settled_at timestamptz,
    CHECK ((state = 'pending') = (settled_at IS NULL))
);
-- Every reservation passes through these once, so there are no more of them (a user's deletion
-- scans the table). Pending reservations are the changes in flight: few and short-lived. The ended
-- ones are purged by age, which rises with their place in the table: a BRIN index costs next to
-- nothing to keep.
CREATE INDEX reservations_pending ON reservations (user_id, vm_uuid) WHERE state = 'pending';
CREATE INDEX reservations_settled ON reservations USING brin (settled_at) WHERE state <> 'pending';

-- The VMs that count, as commits and vm-service's events report them: the newest version wins. A
-- deleted VM stays a while as a tombstone (deleted_at), so that a late report of it changes nothing:
-- VM uuids are never reused.
CREATE TABLE vms (
    uuid       uuid        PRIMARY KEY,
    user_id    bigint      NOT NULL,
    cpu        bigint      NOT NULL CHECK (cpu >= 0),
    memory     bigint      NOT NULL CHECK (memory >= 0),
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX vms_user ON vms (user_id);
CREATE INDEX vms_deleted ON vms USING brin (deleted_at) WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP TABLE vms;
DROP TABLE reservations;
DROP TABLE quotas;
