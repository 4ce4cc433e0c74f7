-- +goose Up
-- Raised with every change of role or approval: access tokens signed with a lower version are
-- revoked by every service (limen.user.events).
ALTER TABLE users ADD COLUMN token_version bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN token_version;
