-- +goose Up
-- Console tickets: the SHA-256 of each ticket's secret (never the secret), what it opens, and the
-- access token it was issued for (user, token version, login), whose revocation closes the console.
-- A ticket is spent (used_at) by the first attempt to redeem it, whatever follows. A deleted VM takes
-- its tickets along.
CREATE TABLE console_tickets (
    hash          bytea       PRIMARY KEY,
    vm_uuid       uuid        NOT NULL REFERENCES vms (uuid) ON DELETE CASCADE,
    protocol      text        NOT NULL CHECK (protocol IN ('vnc', 'serial')),
    user_id       bigint      NOT NULL,
    admin         boolean     NOT NULL,
    token_version bigint      NOT NULL,
    session_id    text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX console_tickets_expires_at ON console_tickets (expires_at);

-- When each running machine's current run was first seen (the stats' uptime), by libvirt's domain id
-- of the run, which changes at every start. Rows of machines that no longer run are removed. No
-- foreign key: a machine may run before its VM's row commits, or after it is gone.
CREATE TABLE machine_runs (
    vm_uuid    uuid        PRIMARY KEY,
    run_id     bigint      NOT NULL,
    started_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE machine_runs;
DROP TABLE console_tickets;
