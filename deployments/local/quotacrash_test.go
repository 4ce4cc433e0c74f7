package local

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"limen/libs/contract"
	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/procenv"
)

// checkQuotaAfterCrash kills a vm-service for real between a create's reservation and its commit, at
// the worst moment: its disk and domain are made, its row is being written. The stack's vm-service is
// run.sh's to supervise (run.sh stops everything when one of its services dies), so the create goes to
// a second replica started from the same binary with the same environment, as run.sh starts it. The
// insert of the row is held by a table lock until the replica is killed. Then: quota-service frees the
// lost reservation once it expires, so usage equals the VMs that exist; and the replica, started again,
// removes the domain and the disk the crash left (with a short LIMEN_ORPHAN_GRACE: its default, 10m,
// leaves a domain without a row alone for that long, as a create on another replica may be writing it).
func checkQuotaAfterCrash(t *testing.T, base, adminPassword, dataDir string, libvirtd *libvirttest.Daemon) {
	c := apiClient{t: t, base: base}
	token := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "").body["token"].(string)
	ctx := context.Background()

	env, err := procenv.Of(servicePID(t, dataDir, "vm-service"))
	if err != nil {
		t.Fatal(err)
	}
	replica := startReplica(t, dataDir, env)
	// Two connections: a transaction sees pg_stat_activity as it was when it first looked.
	db, locker := connect(t, procenv.Value(env, "DATABASE_URL")), connect(t, procenv.Value(env, "DATABASE_URL"))
	lock, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	// Reads go on (the name check), inserts wait: the create reserves, makes its disk and domain, and
	// waits to record the VM (for vm-service's lock_timeout, 3 s).
	if _, err := lock.Exec(ctx, "LOCK TABLE vm.vms IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	before, everyones := vmsHeld(t, base+"/api/vms", token), vmsHeld(t, base+"/api/vms?all=true", token)
	answered := make(chan string, 1)
	go func() {
		status, raw := send(replica.base, "POST", "/api/vms", token, map[string]any{"name": "crashed", "cpu": 1, "memory": 64, "os_type": "other"})
		answered <- strconv.Itoa(status) + " " + raw
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO vms%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the create never reached the insert of its row")
		}
		time.Sleep(20 * time.Millisecond)
	}
	replica.kill()
	killed := time.Now()
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if a := <-answered; !strings.HasPrefix(a, "0 ") {
		t.Fatalf("the killed vm-service answered the create: %s", a)
	}

	// What the crash left: a domain and a disk without a VM; the reservation is still held.
	orphan := orphanDomain(t, libvirtd, everyones)
	disk := filepath.Join(procenv.Value(env, "LIMEN_STORAGE_POOL_PATH"), orphan.String()+".qcow2")
	if _, err := os.Stat(disk); err != nil {
		t.Fatalf("the crashed create's disk: %v", err)
	}
	if q := quotaOf(t, base, token); q.Usage.VMs != len(before)+1 {
		t.Fatalf("usage %+v while the crashed create's reservation is held; %d VMs exist", q.Usage, len(before))
	}

	// Started again: its start-up resync removes the orphan, which is older than the grace by then.
	const grace = time.Second
	time.Sleep(time.Until(killed.Add(grace)))
	replica = startReplica(t, dataDir, procenv.With(env, "LIMEN_ORPHAN_GRACE="+grace.String()))
	defer replica.stop()
	waitFor(t, nil, 10*time.Second, "the crashed create's domain and disk removed", func() bool {
		_, err := os.Stat(disk)
		return domainGone(t, libvirtd, orphan) && errors.Is(err, os.ErrNotExist)
	})

	// Usage equals the VMs that exist once the reservation expired.
	waitFor(t, nil, quotaReservationTTL+10*time.Second, "usage equal to the VMs after the crash", func() bool {
		vms := vmsHeld(t, base+"/api/vms", token)
		q := quotaOf(t, base, token)
		cpu, memory := 0, 0
		for _, vm := range vms {
			cpu, memory = cpu+vm.CPU, memory+vm.Memory
		}
		return q.Usage.VMs == len(vms) && q.Usage.CPU == cpu && q.Usage.Memory == memory
	})
}

// connect opens a connection to the stack's database, closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// heldVM is what a VM takes of its owner's quota.
type heldVM struct {
	UUID   uuid.UUID `json:"uuid"`
	CPU    int       `json:"cpu"`
	Memory int       `json:"memory"`
}

// vmsHeld lists the VMs at url (/api/vms through the gateway).
func vmsHeld(t *testing.T, url, token string) []heldVM {
	t.Helper()
	status, raw := send(url, "GET", "", token, nil)
	var vms []heldVM
	if status != http.StatusOK || json.Unmarshal([]byte(raw), &vms) != nil {
		t.Fatalf("GET %s: %d %s", url, status, raw)
	}
	return vms
}

// quotaOf is the caller's quota and usage.
func quotaOf(t *testing.T, base, token string) quotaUsage {
	t.Helper()
	status, raw := send(base, "GET", "/api/quota", token, nil)
	var q quotaUsage
	if status != http.StatusOK || json.Unmarshal([]byte(raw), &q) != nil {
		t.Fatalf("GET /api/quota: %d %s", status, raw)
	}
	return q
}

// orphanDomain is the one domain libvirt has that is none of the VMs listed before the crash.
func orphanDomain(t *testing.T, libvirtd *libvirttest.Daemon, before []heldVM) uuid.UUID {
	t.Helper()
	l := connectLibvirt(t, libvirtd)
	defer func() { _ = l.Disconnect() }()
	domains, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	known := map[uuid.UUID]bool{}
	for _, vm := range before {
		known[vm.UUID] = true
	}
	var orphans []uuid.UUID
	for _, d := range domains {
		if id := uuid.UUID(d.UUID); !known[id] && d.Name == contract.DomainName(id.String()) {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) != 1 {
		t.Fatalf("domains without a VM after the crash: %v; want the crashed create's", orphans)
	}
	return orphans[0]
}

func domainGone(t *testing.T, libvirtd *libvirttest.Daemon, id uuid.UUID) bool {
	t.Helper()
	l := connectLibvirt(t, libvirtd)
	defer func() { _ = l.Disconnect() }()
	_, err := l.DomainLookupByUUID(libvirt.UUID(id))
	if err != nil && !libvirt.IsNotFound(err) {
		t.Fatal(err)
	}
	return err != nil
}

func connectLibvirt(t *testing.T, libvirtd *libvirttest.Daemon) *libvirt.Libvirt {
	t.Helper()
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(libvirtd.SocketPath())))
	if err := l.ConnectToURI(libvirt.ConnectURI(libvirtd.URI())); err != nil {
		t.Fatal(err)
	}
	return l
}

// replica is a vm-service the test started beside the stack's.
type replica struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	base string
}

// startReplica starts dataDir's vm-service binary with env (the stack's vm-service's environment) on
// a port of its own, and waits until it is ready.
func startReplica(t *testing.T, dataDir string, env []string) *replica {
	t.Helper()
	listen := addr(freePorts(t, 1)[0])
	log, err := os.OpenFile(filepath.Join(dataDir, "logs", "vm-service-replica.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(dataDir, "bin", "vm-service"))
	cmd.Env = procenv.With(env, "LISTEN_ADDR="+listen)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{t: t, cmd: cmd, done: make(chan struct{}), base: "http://" + listen}
	go func() { _ = cmd.Wait(); close(r.done) }()
	t.Cleanup(r.kill)
	waitFor(t, nil, 60*time.Second, "the vm-service replica ready", func() bool {
		select {
		case <-r.done:
			t.Fatalf("the vm-service replica exited during start-up (see %s)", log.Name())
		default:
		}
		resp, err := http.Get(r.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

// kill ends the replica at once, as a crash would.
func (r *replica) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// stop ends the replica as run.sh does (SIGTERM), killing it if it does not stop within stopTimeout.
func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(stopTimeout):
		r.t.Errorf("the vm-service replica still runs %v after SIGTERM", stopTimeout)
		r.kill()
	}
}
