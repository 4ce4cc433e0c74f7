package jwtsign_test

import (
	"context"
	"github.com/google/uuid"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"limen/auth-service/internal/adapters/jwtsign"
	"limen/auth-service/internal/domain"
	"limen/libs/authn"
)

func load(t *testing.T, dir string) *jwtsign.KeySet {
	t.Helper()
	ks, err := jwtsign.Load(jwtsign.Config{Dir: dir, Issuer: "limen", Audience: "limen-api", AccessTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestLoad_GeneratesAPrivateKeyOnFirstStart(t *testing.T) {
	dir := t.TempDir()
	first := load(t, dir)
	paths, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	if len(paths) != 1 {
		t.Fatalf("keys: %v", paths)
	}
	if info, _ := os.Stat(paths[0]); info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", info.Mode().Perm())
	}
	if again := load(t, dir); again.SigningKeyID() != first.SigningKeyID() {
		t.Fatal("a restart changed the signing key")
	}
}

func TestIssue_TokensVerifyThroughTheJWKS(t *testing.T) {
	ks := load(t, t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(ks.JWKS()) }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: srv.URL, Issuer: "limen", Audience: "limen-api"})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := ks.Issue(&domain.User{ID: 42, Username: "ada", Role: domain.RoleAdmin, Approved: true}, uuid.New(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.UserID != 42 || claims.Subject != "42" || !claims.IsAdmin() || !claims.Approved || claims.ID == "" {
		t.Fatalf("claims %+v", claims)
	}
}

func TestLoad_RotationSignsWithTheNewestAndPublishesAll(t *testing.T) {
	dir := t.TempDir()
	old := load(t, dir)
	oldToken, _, _ := old.Issue(&domain.User{ID: 1, Username: "ada", Role: domain.RoleUser}, uuid.New(), time.Now())
	// A second key file, newer than the first, is what an operator drops in to rotate.
	time.Sleep(10 * time.Millisecond)
	other := t.TempDir()
	load(t, other)
	paths, _ := filepath.Glob(filepath.Join(other, "*.pem"))
	raw, _ := os.ReadFile(paths[0])
	if err := os.WriteFile(filepath.Join(dir, "rotated.pem"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rotated := load(t, dir)
	if rotated.SigningKeyID() == old.SigningKeyID() {
		t.Fatal("still signing with the old key")
	}
	v, _ := authn.NewStaticVerifier(rotated.Keyfunc, authn.VerifierConfig{Issuer: "limen", Audience: "limen-api"})
	if _, err := v.Verify(oldToken); err != nil {
		t.Fatalf("token of the retiring key refused: %v", err)
	}
}
