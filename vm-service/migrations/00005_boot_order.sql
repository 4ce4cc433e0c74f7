-- +goose Up
-- The boot order of each VM's persistent definition, kept beside its other settings so that lists,
-- answers and events show it without asking the hypervisor. Every VM was defined disk first, then
-- CD-ROM.
ALTER TABLE vms ADD COLUMN boot_order text NOT NULL DEFAULT 'hd_cdrom'
    CHECK (boot_order IN ('cdrom', 'hd', 'cdrom_hd', 'hd_cdrom'));

-- +goose Down
ALTER TABLE vms DROP COLUMN boot_order;
