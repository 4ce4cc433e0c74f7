-- +goose Up
-- This installation's identity. vm-service tags the domains it defines with it, so that reconciling
-- a shared libvirt host touches only its own domains, never another installation's.
CREATE TABLE installation (
    id     uuid    PRIMARY KEY DEFAULT gen_random_uuid(),
    single boolean NOT NULL DEFAULT true UNIQUE CHECK (single)
);
INSERT INTO installation DEFAULT VALUES;

-- +goose Down
DROP TABLE installation;
