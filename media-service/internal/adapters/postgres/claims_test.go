package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/testkit/kafkatest"
	"limen/libs/testkit/pgtest"
	"limen/media-service/internal/adapters/postgres"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
	"limen/media-service/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open makes a fresh media schema whose pool has at most maxConns connections; dsn is for looking on
// from outside the pool.
func open(t *testing.T, maxConns int) (pool *pgxpool.Pool, dsn string) {
	t.Helper()
	ctx := context.Background()
	dsn = pgtest.NewDatabase(t)
	pool, err := pgdb.Open(ctx, fmt.Sprintf("%s&pool_max_conns=%d", dsn, maxConns), "media", migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := outbox.Migrate(ctx, pool, "media"); err != nil {
		t.Fatal(err)
	}
	return pool, dsn
}

const isoDir = "/srv/isos"

// library is an in-memory ISO library.
type library struct {
	mu   sync.Mutex
	isos map[string]bool
}

func newLibrary(names ...string) *library {
	l := &library{isos: map[string]bool{}}
	for _, n := range names {
		l.isos[n] = true
	}
	return l
}

func (l *library) List(context.Context) ([]domain.ISO, error) { return nil, nil }

func (l *library) Resolve(_ context.Context, p string) (domain.ISO, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := path.Base(p)
	if !l.isos[name] {
		return domain.ISO{}, domain.ISONotFound(p)
	}
	return domain.ISO{Name: name, Path: isoDir + "/" + name}, nil
}

func (l *library) Upload(context.Context, string, int64, io.Reader, func() error) (domain.ISO, error) {
	return domain.ISO{}, errors.New("not here")
}

func (l *library) Delete(_ context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.isos[name] {
		return domain.ISONotFound(name)
	}
	delete(l.isos, name)
	return nil
}

// drive is an in-memory hypervisor whose changes of the stuck VMs hang, as a change does while the
// guest keeps its tray locked, until release is closed.
type drive struct {
	mu      sync.Mutex
	drives  map[uuid.UUID]string
	stuck   map[uuid.UUID]bool
	entered chan uuid.UUID
	release chan struct{}
	// holdingTakes is how long Holding takes after it looked, as the real one reading every domain.
	holdingTakes time.Duration
}

func newDrive() *drive {
	return &drive{drives: map[uuid.UUID]string{}, stuck: map[uuid.UUID]bool{}, entered: make(chan uuid.UUID, 16), release: make(chan struct{})}
}

func (d *drive) Media(_ context.Context, vm uuid.UUID) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drives[vm], nil
}

func (d *drive) Insert(_ context.Context, vm uuid.UUID, p string) error {
	d.mu.Lock()
	stuck := d.stuck[vm]
	d.mu.Unlock()
	if stuck {
		d.entered <- vm
		<-d.release
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drives[vm] = p
	return nil
}

func (d *drive) Eject(ctx context.Context, vm uuid.UUID) error { return d.Insert(ctx, vm, "") }

func (d *drive) Holding(_ context.Context, p string) ([]uuid.UUID, error) {
	d.mu.Lock()
	var out []uuid.UUID
	for vm, held := range d.drives {
		if held == p {
			out = append(out, vm)
		}
	}
	d.mu.Unlock()
	time.Sleep(d.holdingTakes)
	return out, nil
}

type vms map[string]domain.VM

func (v vms) Lookup(_ context.Context, ref string) (domain.VM, error) {
	if vm, ok := v[ref]; ok {
		return vm, nil
	}
	return domain.VM{}, domain.ErrVMNotFound
}

func newVMs(n int) (vms, []domain.VM) {
	all := vms{}
	var list []domain.VM
	for range n {
		vm := domain.VM{UUID: uuid.New(), OwnerID: 1}
		all[vm.UUID.String()] = vm
		list = append(list, vm)
	}
	return all, list
}

var admin = app.Caller{UserID: 9, Admin: true}

// attach is the admin's attach of isoPath to the VM ref names.
func attach(ref, isoPath string) app.ChangeMedia {
	return app.ChangeMedia{Caller: admin, Ref: ref, Action: string(domain.ActionAttach), ISOPath: isoPath}
}

// While attaches hang in the hypervisor (a guest holding its tray shut), media-service holds no
// transaction, no lock and no connection for them: with a pool of two connections and two attaches
// stuck, another VM's attach is recorded and its event published by the outbox relay.
func TestAttach_StuckInTheHypervisor_HoldsNoTransactionNorLock(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, dsn := open(t, 2)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, contract.TopicMediaEvents))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	relay := outbox.NewRelay(pool, outbox.RelayConfig{Brokers: broker.ListenAddrs()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(ctx) }()
	defer func() { cancel(); <-relayDone; _ = relay.Close() }()

	all, list := newVMs(3)
	a, b, c := list[0], list[1], list[2]
	d := newDrive()
	d.stuck[a.UUID], d.stuck[b.UUID] = true, true
	history := postgres.NewHistory(pool, outbox.NewWriter("media-service"))
	change := app.ChangeMediaHandler{VMs: all, Library: newLibrary("a.iso", "b.iso", "c.iso"), Drive: d, Claims: history, History: history,
		Now: func() time.Time { return time.Now().UTC() }}
	stuckDone := make(chan error, 2)
	for _, vm := range []domain.VM{a, b} {
		go func() {
			_, err := change.Handle(ctx, attach(vm.UUID.String(), "a.iso"))
			stuckDone <- err
		}()
	}
	released := false
	defer func() {
		if !released {
			close(d.release)
		}
	}()
	for range 2 {
		select {
		case <-d.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the attaches never reached the hypervisor")
		}
	}

	watcher, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.Background())
	var stuckAt time.Time
	if err := watcher.QueryRow(ctx, `SELECT now()`).Scan(&stuckAt); err != nil {
		t.Fatal(err)
	}

	// Another VM's attach goes through, and the relay publishes its event.
	quick, quickCancel := context.WithTimeout(ctx, 10*time.Second)
	defer quickCancel()
	if _, err := change.Handle(quick, attach(c.UUID.String(), "c.iso")); err != nil {
		t.Fatalf("attach to another VM while two are stuck: %v", err)
	}
	kafkatest.Read(t, broker.ListenAddrs(), contract.TopicMediaEvents, func(r *kgo.Record) (string, bool) {
		var e struct {
			Subject string `json:"subject"`
		}
		return e.Subject, json.Unmarshal(r.Value, &e) == nil && e.Subject == c.UUID.String()
	}, func(got []string) bool { return len(got) == 1 })
	// So does the deletion of another ISO; the stuck attaches' ISO cannot be claimed for deletion.
	other := app.DeleteISOHandler{Library: newLibrary("b.iso"), Drive: d, Claims: history}
	if err := other.Handle(quick, app.DeleteISO{Name: "b.iso"}); err != nil {
		t.Fatalf("delete of another ISO while attaches are stuck: %v", err)
	}
	short, shortCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := history.ClaimDeletion(short, "a.iso"); err == nil {
		t.Fatal("a.iso claimed for deletion while it is being attached")
	}
	shortCancel()

	// Nothing the stuck attaches started before they got stuck is still open or locked (the relay's
	// own transactions, short but possibly just begun then, aside).
	var open, advisory int
	if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start <= $1 AND query NOT ILIKE '%outbox%'`, stuckAt).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`).Scan(&advisory); err != nil {
		t.Fatal(err)
	}
	if open != 0 || advisory != 0 {
		t.Errorf("while the hypervisor works: %d transactions open since before, %d advisory locks held", open, advisory)
	}

	released = true
	close(d.release)
	for range 2 {
		if err := <-stuckDone; err != nil {
			t.Errorf("stuck attach: %v", err)
		}
	}
	var changes, claims int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM media_changes), (SELECT count(*) FROM media_claims)`).Scan(&changes, &claims); err != nil {
		t.Fatal(err)
	}
	if changes != 3 || claims != 0 {
		t.Fatalf("%d changes recorded, %d claims left; want 3 and 0", changes, claims)
	}
}

func TestClaims_OneChangePerVM_AttachOrDeletion_AcrossReplicas(t *testing.T) {
	ctx := context.Background()
	pool, _ := open(t, 4)
	h1, h2 := postgres.NewHistory(pool, outbox.NewWriter("media-service")), postgres.NewHistory(pool, outbox.NewWriter("media-service"))
	vm1, vm2 := uuid.New(), uuid.New()
	refused := func(what string, claim func(ctx context.Context) (app.Claim, error)) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if c, err := claim(short); err == nil {
			t.Errorf("%s: claimed %+v", what, c)
		}
	}
	must := func(c app.Claim, err error) app.Claim {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	attach := must(h1.ClaimDrive(ctx, vm1, "a.iso"))
	refused("another change of the VM, same replica", func(ctx context.Context) (app.Claim, error) { return h1.ClaimDrive(ctx, vm1, "") })
	refused("another change of the VM, other replica", func(ctx context.Context) (app.Claim, error) { return h2.ClaimDrive(ctx, vm1, "b.iso") })
	refused("deletion of the ISO being attached", func(ctx context.Context) (app.Claim, error) { return h2.ClaimDeletion(ctx, "a.iso") })
	deletion := must(h2.ClaimDeletion(ctx, "b.iso"))
	refused("attach of the ISO being deleted", func(ctx context.Context) (app.Claim, error) { return h1.ClaimDrive(ctx, vm2, "b.iso") })
	refused("a second deletion", func(ctx context.Context) (app.Claim, error) { return h1.ClaimDeletion(ctx, "b.iso") })
	other := must(h1.ClaimDrive(ctx, vm2, "c.iso"))

	// Ended claims free what they held, even when the caller has gone.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		h *postgres.History
		c app.Claim
	}{{h1, attach}, {h2, deletion}, {h1, other}} {
		if err := c.h.Release(gone, c.c); err != nil {
			t.Fatal(err)
		}
	}
	must(h2.ClaimDeletion(ctx, "a.iso"))
	must(h2.ClaimDrive(ctx, vm1, "b.iso"))

	// The claim of a replica that died expires and is taken over.
	dead := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO media_claims (token, vm_uuid, iso_name, deleting, expires_at)
		VALUES ($1, $2, 'x.iso', false, now() - interval '1 second')`, uuid.New(), dead); err != nil {
		t.Fatal(err)
	}
	must(h1.ClaimDrive(ctx, dead, ""))
}

// Many attaches, on two replicas, race a deletion of their ISO: whatever order they run in, no VM
// ends up holding the deleted ISO, and a deletion refused leaves the ISO in place.
func TestAttachesRacingADeletion_NoVMHoldsADeletedISO(t *testing.T) {
	ctx := context.Background()
	pool, _ := open(t, 8)
	replicas := []*postgres.History{postgres.NewHistory(pool, outbox.NewWriter("media-service")), postgres.NewHistory(pool, outbox.NewWriter("media-service"))}
	for round := range 5 {
		all, list := newVMs(12)
		lib, d := newLibrary("race.iso"), newDrive()
		d.holdingTakes = 20 * time.Millisecond
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, vm := range list {
			h := replicas[i%2]
			change := app.ChangeMediaHandler{VMs: all, Library: lib, Drive: d, Claims: h, History: h, Now: func() time.Time { return time.Now().UTC() }}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := change.Handle(ctx, attach(vm.UUID.String(), "race.iso")); err != nil && failure.KindOf(err) != failure.NotFound {
					t.Errorf("attach: %v", err)
				}
			}()
		}
		var deleteErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			deleteErr = (app.DeleteISOHandler{Library: lib, Drive: d, Claims: replicas[round%2]}).Handle(ctx, app.DeleteISO{Name: "race.iso"})
		}()
		close(start)
		wg.Wait()
		holders, _ := d.Holding(ctx, isoDir+"/race.iso")
		_, resolveErr := lib.Resolve(ctx, "race.iso")
		switch {
		case deleteErr == nil && len(holders) > 0:
			t.Fatalf("round %d: the ISO was deleted, yet %d VMs hold it", round, len(holders))
		case deleteErr != nil && (failure.KindOf(deleteErr) != failure.Conflict || resolveErr != nil):
			t.Fatalf("round %d: delete %v, ISO %v", round, deleteErr, resolveErr)
		}
		t.Logf("round %d: delete %v, %d VMs hold the ISO", round, deleteErr, len(holders))
	}
	var claims int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM media_claims`).Scan(&claims); err != nil || claims != 0 {
		t.Fatalf("%d claims left (%v)", claims, err)
	}
}
