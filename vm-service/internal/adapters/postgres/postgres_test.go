package postgres_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/testkit/pgtest"
	"limen/vm-service/internal/adapters/postgres"
	"limen/vm-service/internal/domain"
	"limen/vm-service/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// deadlines records, for every statement sent, whether its context had a deadline.
type deadlines struct {
	mu      sync.Mutex
	without []string
	total   int
}

func (d *deadlines) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total++
	if _, ok := ctx.Deadline(); !ok {
		d.without = append(d.without, data.SQL)
	}
	return ctx
}

func (d *deadlines) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// open migrates a fresh database and returns a pool on it; tracer, when set, sees every statement.
func open(t *testing.T, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	migrated, err := pgdb.Open(ctx, dsn, "vm", migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if err := outbox.Migrate(ctx, migrated, "vm"); err != nil {
		t.Fatal(err)
	}
	migrated.Close()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "vm"
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newVM(t *testing.T, owner int64, name string) *domain.VM {
	t.Helper()
	vm, err := domain.NewVM(owner, name, 1, 64, domain.OSType{Name: "other", DiskGB: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// Every call of the adapter bounds its statements with a deadline, even when its caller's context
// has none (background loops, detached hypervisor work): a hung connection cannot hang vm-service.
func TestEveryCallHasADeadline(t *testing.T) {
	trace := &deadlines{}
	pool := open(t, trace)
	ctx := context.Background() // no deadline of its own
	repo := postgres.NewVMs(pool, outbox.NewWriter("vm-service"), 15*time.Second)
	replica := postgres.NewReplica(pool, outbox.NewWriter("vm-service"), "h", 15*time.Second)

	vm := newVM(t, 1, "a")
	steps := map[string]func() error{}
	order := []string{"Installation", "Beat", "Add", "Usage", "Get by id", "Get by uuid", "List", "List owner", "NameTaken", "Update", "Remove", "ReleaseDead", "Leave"}
	steps["Installation"] = func() error { _, err := postgres.Installation(ctx, pool); return err }
	steps["Beat"] = func() error { return replica.Beat(ctx) }
	steps["Add"] = func() error { return repo.Add(ctx, vm) }
	steps["Usage"] = func() error { _, err := repo.Usage(ctx, 1); return err }
	steps["Get by id"] = func() error { _, err := repo.Get(ctx, domain.Ref{ID: vm.ID}); return err }
	steps["Get by uuid"] = func() error { _, err := repo.Get(ctx, domain.ByUUID(vm.UUID)); return err }
	steps["List"] = func() error { _, err := repo.List(ctx, 0); return err }
	steps["List owner"] = func() error { _, err := repo.List(ctx, 1); return err }
	steps["NameTaken"] = func() error { _, err := repo.NameTaken(ctx, 1, "a"); return err }
	steps["Update"] = func() error {
		_, err := repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { return vm.BeginTask(domain.ActionStart, replica.ID(), time.Now()) })
		return err
	}
	steps["Remove"] = func() error { return repo.Remove(ctx, vm) }
	steps["ReleaseDead"] = func() error { _, err := replica.ReleaseDead(ctx); return err }
	steps["Leave"] = func() error { return replica.Leave(ctx) }
	for _, name := range order {
		before := len(trace.without)
		if err := steps[name](); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(trace.without) > before {
			t.Errorf("%s sent statements without a deadline: %q", name, trace.without[before:])
		}
	}
	if trace.total < len(order) {
		t.Fatalf("only %d statements traced", trace.total)
	}
}

// taskOf reads a VM's task as a caller sees it.
func taskOf(t *testing.T, repo *postgres.VMs, id uuid.UUID) *domain.VM {
	t.Helper()
	vm, err := repo.Get(context.Background(), domain.ByUUID(id))
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func setHeartbeat(t *testing.T, pool *pgxpool.Pool, id uuid.UUID, age time.Duration) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE replicas SET heartbeat_at = now() - $2 * interval '1 millisecond' WHERE id = $1`,
		id, age.Milliseconds()); err != nil {
		t.Fatal(err)
	}
}

// A claim lives exactly as long as its process's heartbeat is younger than the lease; a replica
// starting up releases the dead ones at once and forgets their processes.
func TestTaskClaims_LiveWithTheirProcess(t *testing.T) {
	pool := open(t, nil)
	ctx := context.Background()
	const lease = 15 * time.Second
	repo := postgres.NewVMs(pool, outbox.NewWriter("vm-service"), lease)
	events := outbox.NewWriter("vm-service")
	a, b := postgres.NewReplica(pool, events, "h", lease), postgres.NewReplica(pool, events, "h", lease)
	for _, r := range []*postgres.Replica{a, b} {
		if err := r.Beat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	vm, legacy := newVM(t, 1, "claimed"), newVM(t, 1, "legacy")
	for _, v := range []*domain.VM{vm, legacy} {
		if err := repo.Add(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { return vm.BeginTask(domain.ActionStop, a.ID(), time.Now()) })
	if err != nil || !claimed.TaskLive {
		t.Fatalf("claim: %+v %v", claimed, err)
	}
	if got := taskOf(t, repo, vm.UUID); !got.Busy() || got.TaskOwner != a.ID() {
		t.Fatalf("a live process's claim: %+v", got)
	}
	_, err = repo.Update(ctx, vm.UUID, func(vm *domain.VM) error { return vm.BeginTask(domain.ActionStart, b.ID(), time.Now()) })
	if failure.KindOf(err) != failure.Busy {
		t.Fatalf("a second claim while the first process lives: %v", err)
	}

	setHeartbeat(t, pool, a.ID(), lease-time.Second)
	if got := taskOf(t, repo, vm.UUID); !got.Busy() {
		t.Fatal("a claim died before its lease ran out")
	}
	setHeartbeat(t, pool, a.ID(), lease+time.Second)
	if got := taskOf(t, repo, vm.UUID); got.Busy() || got.Task != domain.ActionStop {
		t.Fatalf("a dead process's claim: %+v", got)
	}
	// A claim made before claims named their process keeps the old rule: 15 minutes.
	if _, err := pool.Exec(ctx, `UPDATE vms SET task = 'start', task_since = now() - interval '1 minute' WHERE uuid = $1`, legacy.UUID); err != nil {
		t.Fatal(err)
	}
	if got := taskOf(t, repo, legacy.UUID); !got.Busy() {
		t.Fatal("a recent claim without an owner does not block")
	}

	before := taskOf(t, repo, vm.UUID).Version
	released, err := b.ReleaseDead(ctx)
	if err != nil || released != 1 {
		t.Fatalf("released %d (%v)", released, err)
	}
	got := taskOf(t, repo, vm.UUID)
	if got.Task != "" || got.TaskOwner != uuid.Nil || got.Version != before+1 {
		t.Fatalf("after the release (version %d before): %+v", before, got)
	}
	// Readers learn of the release as of any change: an update event with the new version, the task gone.
	var event struct {
		Type     string
		Sequence int64
		Data     struct{ Task *string }
	}
	var payload []byte
	if err := pool.QueryRow(ctx, `SELECT payload FROM outbox WHERE key = $1 ORDER BY id DESC LIMIT 1`, vm.UUID.String()).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &event); err != nil || event.Type != contract.TypeVMUpdated || event.Sequence != got.Version ||
		event.Data.Task != nil && *event.Data.Task != "" {
		t.Fatalf("the release's event: %s (%v)", payload, err)
	}
	var listed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM replicas`).Scan(&listed); err != nil || listed != 1 {
		t.Fatalf("replicas listed after the release: %d (%v)", listed, err)
	}
	// A process that comes back after it was given up beats itself back in.
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM replicas`).Scan(&listed); err != nil || listed != 2 {
		t.Fatalf("replicas listed after the return: %d (%v)", listed, err)
	}
}
