-- +goose Up
-- Who rotated a refresh token: the SHA-256 of the client's address and User-Agent (never the values
-- themselves). The same client presenting the spent token again within LIMEN_REFRESH_REUSE_GRACE is
-- two tabs refreshing at once, not theft.
ALTER TABLE refresh_tokens ADD COLUMN rotated_by bytea;

-- login_throttle now counts attempts (logins and registrations) reserved before their verdict, not
-- only failures; its layout is unchanged.

-- +goose Down
ALTER TABLE refresh_tokens DROP COLUMN rotated_by;
