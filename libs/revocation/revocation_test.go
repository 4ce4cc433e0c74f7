package revocation_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/revocation"
)

func claims(user, version int64, session string) *authn.Claims {
	return &authn.Claims{UserID: user, Version: version, SessionID: session}
}

func TestList_VersionsDeletionsAndSessions(t *testing.T) {
	l := revocation.NewList()
	now := time.Now()
	var notified []int64
	l.Subscribe(func(id int64) { notified = append(notified, id) })
	if l.Revoked(claims(1, 0, "s1")) {
		t.Fatal("an empty list revokes")
	}
	l.Apply(contract.TypeUserChanged, contract.UserChange{UserID: 1, TokenVersion: 3}, now)
	l.Apply(contract.TypeUserChanged, contract.UserChange{UserID: 1, TokenVersion: 2}, now) // late: ignored
	if !l.Revoked(claims(1, 2, "")) || l.Revoked(claims(1, 3, "")) || l.Revoked(claims(2, 0, "")) {
		t.Fatal("versions below the newest are not (only) the revoked ones")
	}
	l.Apply(contract.TypeSessionEnded, contract.UserChange{UserID: 1, SessionID: "s1"}, now)
	if !l.Revoked(claims(1, 3, "s1")) || l.Revoked(claims(1, 3, "s2")) {
		t.Fatal("an ended session's tokens are not (only) the revoked ones")
	}
	l.Apply(contract.TypeUserDeleted, contract.UserChange{UserID: 2}, now)
	if !l.Revoked(claims(2, 99, "")) {
		t.Fatal("a deleted user's token is not revoked")
	}
	l.Apply("limen.user.unknown", contract.UserChange{UserID: 7}, now)
	if want := []int64{1, 1, 1, 2}; len(notified) != len(want) {
		t.Fatalf("subscribers told %v, want %v", notified, want)
	}
}

func publish(t *testing.T, cl *kgo.Client, eventType string, c contract.UserChange) {
	t.Helper()
	data, _ := json.Marshal(c)
	value, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": strconv.FormatInt(time.Now().UnixNano(), 10),
		"source": "auth-service", "type": eventType, "time": time.Now().UTC(), "data": json.RawMessage(data)})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: contract.TopicUserEvents, Key: []byte(strconv.FormatInt(c.UserID, 10)), Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// A follower that starts late still learns every earlier change before it says it caught up, and
// applies new ones as they come.
func TestFollower_ReadsFromTheBeginningThenFollows(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, contract.TopicUserEvents))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for user := int64(1); user <= 20; user++ {
		publish(t, producer, contract.TypeUserDeleted, contract.UserChange{UserID: user})
	}

	list := revocation.NewList()
	f := revocation.NewFollower(broker.ListenAddrs(), list, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-f.CaughtUp():
	case <-time.After(10 * time.Second):
		t.Fatal("never caught up")
	}
	for user := int64(1); user <= 20; user++ {
		if !list.Revoked(claims(user, 0, "")) {
			t.Fatalf("user %d's deletion, published before the start, is not applied after catching up", user)
		}
	}

	applied := make(chan struct{}, 1)
	list.Subscribe(func(id int64) {
		if id == 42 {
			applied <- struct{}{}
		}
	})
	sent := time.Now()
	publish(t, producer, contract.TypeUserChanged, contract.UserChange{UserID: 42, TokenVersion: 1})
	select {
	case <-applied:
		t.Logf("a change reached the list %s after it was published", time.Since(sent))
	case <-time.After(5 * time.Second):
		t.Fatal("a new change was not applied within 5 s")
	}
	if !list.Revoked(claims(42, 0, "")) {
		t.Fatal("the change did not revoke")
	}
}

// With no topic yet (auth-service has published nothing), a follower is caught up: nothing is revoked.
func TestFollower_NoTopicYetIsCaughtUp(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	f := revocation.NewFollower(broker.ListenAddrs(), revocation.NewList(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()
	select {
	case <-f.CaughtUp():
	case <-time.After(10 * time.Second):
		t.Fatal("never caught up")
	}
}
