package argon2_test

import (
	"context"
	"testing"

	"limen/auth-service/internal/adapters/argon2"
)

func TestHasher_VerifiesOnlyTheRightPassword(t *testing.T) {
	h := argon2.New(argon2.DefaultParams)
	hash, err := h.Hash(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(context.Background(), "correct horse", hash); !ok || err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if ok, _ := h.Verify(context.Background(), "wrong horse", hash); ok {
		t.Fatal("wrong password accepted")
	}
}

// BenchmarkLogin is the password cost of one login.
func BenchmarkLogin(b *testing.B) {
	h := argon2.New(argon2.DefaultParams)
	hash, _ := h.Hash(context.Background(), "correct horse")
	for b.Loop() {
		if ok, _ := h.Verify(context.Background(), "correct horse", hash); !ok {
			b.Fatal("refused")
		}
	}
}
