package app_test

import (
	"context"
	"github.com/google/uuid"
	"strings"
	"sync"
	"time"

	"limen/auth-service/internal/app"
	"limen/auth-service/internal/domain"
)

// In-memory ports, enough to specify the use cases; the Postgres adapters are tested for real.

type fakeUsers struct {
	mu    sync.Mutex
	users map[int64]*domain.User
}

func newFakeUsers(users ...*domain.User) *fakeUsers {
	f := &fakeUsers{users: map[int64]*domain.User{}}
	for _, u := range users {
		_ = f.Create(context.Background(), u)
	}
	return f
}

func (f *fakeUsers) Create(_ context.Context, u *domain.User) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, other := range f.users {
		if strings.EqualFold(other.Username, u.Username) {
			return domain.ErrUsernameTaken
		}
	}
	u.ID = int64(len(f.users) + 1)
	copied := *u
	f.users[u.ID] = &copied
	return nil
}

func (f *fakeUsers) ByUsername(_ context.Context, name string) (*domain.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if strings.EqualFold(u.Username, name) {
			copied := *u
			return &copied, nil
		}
	}
	return nil, domain.ErrUserNotFound
}

func (f *fakeUsers) ByID(_ context.Context, id int64) (*domain.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[id]
	if !ok {
		return nil, domain.ErrUserNotFound
	}
	copied := *u
	return &copied, nil
}

func (f *fakeUsers) List(context.Context, int, int) ([]*domain.User, int, error) {
	return nil, len(f.users), nil
}

func (f *fakeUsers) admins() domain.Admins {
	n := 0
	for _, u := range f.users {
		if u.IsActiveAdmin() {
			n++
		}
	}
	return domain.Admins(n)
}

func (f *fakeUsers) Update(_ context.Context, id int64, change func(*domain.User, domain.Admins) error) (*domain.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[id]
	if !ok {
		return nil, domain.ErrUserNotFound
	}
	copied := *u
	if err := change(&copied, f.admins()); err != nil {
		return nil, err
	}
	f.users[id] = &copied
	return &copied, nil
}

func (f *fakeUsers) Delete(_ context.Context, id int64, _ bool, check func(*domain.User, domain.Admins) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.users[id]
	if !ok {
		return domain.ErrUserNotFound
	}
	if err := check(u, f.admins()); err != nil {
		return err
	}
	delete(f.users, id)
	return nil
}

// plainHasher "hashes" by prefixing and counts verifications, to see that unknown users cost one too.
type plainHasher struct {
	mu       sync.Mutex
	verified int
}

func (h *plainHasher) Hash(_ context.Context, p string) (string, error) { return "hash:" + p, nil }
func (h *plainHasher) Verify(_ context.Context, p, hash string) (bool, error) {
	h.mu.Lock()
	h.verified++
	h.mu.Unlock()
	return hash == "hash:"+p, nil
}

type fakeAccess struct{}

func (fakeAccess) Issue(u *domain.User, _ uuid.UUID, now time.Time) (string, time.Time, error) {
	return "access-for-" + u.Username, now.Add(time.Hour), nil
}

type fakeTokens struct {
	saved   map[string]domain.RefreshToken
	revoked map[uuid.UUID]bool
}

func newFakeTokens() *fakeTokens {
	return &fakeTokens{saved: map[string]domain.RefreshToken{}, revoked: map[uuid.UUID]bool{}}
}

func (f *fakeTokens) Save(_ context.Context, t domain.RefreshToken) error {
	f.saved[string(t.Hash)] = t
	return nil
}

func (f *fakeTokens) Rotate(_ context.Context, r app.Rotation) (domain.RefreshToken, error) {
	t, ok := f.saved[string(r.Presented)]
	switch {
	case !ok || f.revoked[t.FamilyID]:
		return domain.RefreshToken{}, domain.ErrInvalidRefreshToken
	case t.UsedAt != nil && !r.Reusable(t):
		f.revoked[t.FamilyID] = true
		return domain.RefreshToken{}, domain.ErrInvalidRefreshToken
	case t.UsedAt == nil:
		used := t
		used.UsedAt, used.RotatedBy = &r.Now, r.Client
		f.saved[string(r.Presented)] = used
	}
	n := r.Next(t)
	f.saved[string(n.Hash)] = n
	return t, nil
}

func (f *fakeTokens) RevokeFamilyOf(context.Context, []byte, time.Time) error { return nil }
func (f *fakeTokens) RevokeUser(context.Context, int64, time.Time) error      { return nil }

// fakeThrottle counts attempts under one lock, all or none, in one window that never ends.
type fakeThrottle struct {
	mu       sync.Mutex
	failures map[string]int
}

func newFakeThrottle() *fakeThrottle { return &fakeThrottle{failures: map[string]int{}} }

func (f *fakeThrottle) Reserve(_ context.Context, limits []app.Limit, window time.Duration, now time.Time) ([]app.Reserved, time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range limits {
		if f.failures[l.Key] >= l.Max {
			return nil, window, nil
		}
	}
	var reserved []app.Reserved
	for _, l := range limits {
		f.failures[l.Key]++
		reserved = append(reserved, app.Reserved{Key: l.Key, WindowStart: now})
	}
	return reserved, 0, nil
}

func (f *fakeThrottle) Release(_ context.Context, reserved []app.Reserved, resetKey string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range reserved {
		if r.Key == resetKey {
			delete(f.failures, r.Key)
		} else if f.failures[r.Key] > 0 {
			f.failures[r.Key]--
		}
	}
	return nil
}

func (f *fakeThrottle) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures[key]
}
