package domain_test

import (
	"strings"
	"testing"
	"time"

	"limen/auth-service/internal/domain"
	"limen/libs/failure"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestValidateUsername(t *testing.T) {
	for name, ok := range map[string]bool{
		"ada": true, "a.b-c_d": true, strings.Repeat("a", 32): true,
		"ab": false, strings.Repeat("a", 33): false, "a b": false, "ada!": false, "한글이름": false,
	} {
		if err := domain.ValidateUsername(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestValidatePassword_CountsCharactersNotBytes(t *testing.T) {
	if err := domain.ValidatePassword("비밀번호비밀번호"); err != nil {
		t.Fatalf("8 characters refused: %v", err)
	}
	if err := domain.ValidatePassword("short"); failure.KindOf(err) != failure.Invalid {
		t.Fatalf("short password: %v", err)
	}
	if err := domain.ValidatePassword(strings.Repeat("a", 129)); err == nil {
		t.Fatal("129 characters accepted")
	}
}

func admin(id int64) *domain.User {
	return &domain.User{ID: id, Role: domain.RoleAdmin, Approved: true}
}

func TestLastAdmin_CannotBeDemotedSuspendedOrDeleted(t *testing.T) {
	if err := admin(1).SetRole(domain.RoleUser, 1, now); err != domain.ErrLastAdmin {
		t.Errorf("demote: %v", err)
	}
	if err := admin(1).SetApproved(false, 1, now); err != domain.ErrLastAdmin {
		t.Errorf("suspend: %v", err)
	}
	if err := admin(1).CheckDeletableBy(2, 1); err != domain.ErrLastAdmin {
		t.Errorf("delete: %v", err)
	}
	if err := admin(1).SetRole(domain.RoleUser, 2, now); err != nil {
		t.Errorf("demote with another admin: %v", err)
	}
}

func TestCheckDeletableBy_NeverOneself(t *testing.T) {
	if err := admin(1).CheckDeletableBy(1, 5); err != domain.ErrSelfDelete {
		t.Fatalf("got %v", err)
	}
	user := domain.NewUser("ada", "hash", false, now)
	user.ID = 3
	if err := user.CheckDeletableBy(1, 1); err != nil {
		t.Fatalf("got %v", err)
	}
}
