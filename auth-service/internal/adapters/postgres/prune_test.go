package postgres_test

import (
	"context"
	"testing"
	"time"

	"limen/auth-service/internal/adapters/postgres"
	"limen/auth-service/internal/app"
	"limen/auth-service/migrations"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Expired refresh tokens and throttle counters whose window has long ended are deleted; live ones stay.
func TestPruneExpired_DeletesOnlyWhatNoLongerMatters(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t), "auth", migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, "auth"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, sql := range []string{
		`INSERT INTO users (uuid, username, password_hash, role, approved, created_at, updated_at)
			VALUES (gen_random_uuid(), 'ada', 'x', 'user', true, now(), now())`,
		`INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
			SELECT 'expired', gen_random_uuid(), id, now() - interval '1 hour' FROM users`,
		`INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)
			SELECT 'live', gen_random_uuid(), id, now() + interval '1 hour' FROM users`,
		`INSERT INTO login_throttle (key, failures, window_start) VALUES ('ip:old', 3, now() - interval '2 hours'), ('ip:new', 3, now())`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	prune := app.PruneExpiredHandler{Tokens: postgres.NewRefreshTokens(pool, outbox.NewWriter("test")), Counters: postgres.NewThrottle(pool),
		LongestWindow: time.Hour, Now: func() time.Time { return now }}
	pruned, err := prune.Handle(ctx, app.PruneExpired{})
	if err != nil || pruned.RefreshTokens != 1 || pruned.Counters != 1 {
		t.Fatalf("pruned %d tokens, %d counters (%v); want 1 and 1", pruned.RefreshTokens, pruned.Counters, err)
	}
	var left []string
	rows, _ := pool.Query(ctx, `SELECT convert_from(token_hash, 'UTF8') FROM refresh_tokens UNION ALL SELECT key FROM login_throttle ORDER BY 1`)
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		left = append(left, k)
	}
	if len(left) != 2 || left[0] != "ip:new" || left[1] != "live" {
		t.Fatalf("left %v, want [ip:new live]", left)
	}
}
