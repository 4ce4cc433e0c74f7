package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/contract"
	"limen/libs/testkit"
	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/jwttest"
	"limen/libs/testkit/kafkatest"
	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/pgtest"
	"limen/libs/testkit/servicetest"
	"limen/vm-service/internal/service"
	"limen/vm-service/migrations"
)

func TestMain(m *testing.M) { testkit.Main(m, pgtest.StartShared, libvirttest.StartShared) }

const topic = contract.TopicVMEvents

// stack is one vm-service over the component-test dependencies (servicetest): a fresh database, the
// package's libvirtd and a broker of its own.
type stack struct {
	*servicetest.Stack
	t   testing.TB
	svc *service.Service
	cfg service.Config
	// quota stands in for quota-service.
	quota   *quotaStandIn
	stopped chan struct{}
}

func newStack(t testing.TB, configure ...func(*service.Config)) *stack {
	t.Helper()
	return newStackVia(t, nil, configure...)
}

// newStackVia is newStack reaching its database through via(dsn) (a proxy), when via is not nil.
func newStackVia(t testing.TB, via func(dsn string) string, configure ...func(*service.Config)) *stack {
	t.Helper()
	deps := servicetest.New(t, servicetest.Options{Schema: "vm", Migrations: migrations.FS, Via: via,
		Partitions: map[string]int32{topic: 4, contract.TopicUserEvents: 1}, ReconnectMax: 500 * time.Millisecond})
	s := &stack{Stack: deps, t: t, stopped: make(chan struct{}), quota: newQuotaStandIn(t, "peer-secret")}
	cfg := service.Config{
		Settings:     deps.Settings(),
		KafkaBrokers: deps.Broker.ListenAddrs(), InternalToken: "peer-secret", DomainType: "qemu", StoragePool: "limen-vms",
		StoragePath: filepath.Join(deps.Daemon.ImageDir(), "vms"), StopTimeout: time.Second, ResyncInterval: time.Second,
		HostName: "test-host", QuotaServiceURL: s.quota.URL, OrphanGrace: 10 * time.Minute,
		TaskHeartbeat: 5 * time.Second,
	}
	for _, c := range configure {
		c(&cfg)
	}
	s.cfg = cfg
	ctx, cancel := context.WithCancel(deps.Ctx)
	svc, err := service.New(ctx, cfg, deps.Pool, deps.Conn, deps.Log, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.svc = svc
	apidoc.CheckRoutes(t, service.Name, svc.App())
	go func() { defer close(s.stopped); _ = s.svc.Run(ctx) }()
	t.Cleanup(func() {
		s.removeDomains()
		cancel()
		<-s.stopped
		s.svc.Close()
	})
	return s
}

// removeDomains deletes every VM the test left, so no guest outlives it.
func (s *stack) removeDomains() {
	rows, err := s.Pool.Query(context.Background(), `SELECT uuid FROM vms`)
	if err != nil {
		return
	}
	defer rows.Close()
	l := s.libvirt()
	for rows.Next() {
		var id uuid.UUID
		if rows.Scan(&id) != nil {
			continue
		}
		if dom, err := l.DomainLookupByUUID(golibvirt.UUID(id)); err == nil {
			_ = l.DomainDestroy(dom)
			_ = l.DomainUndefineFlags(dom, golibvirt.DomainUndefineManagedSave|golibvirt.DomainUndefineSnapshotsMetadata|golibvirt.DomainUndefineNvram)
		}
		if pool, err := l.StoragePoolLookupByName("limen-vms"); err == nil {
			if vol, err := l.StorageVolLookupByName(pool, id.String()+".qcow2"); err == nil {
				_ = l.StorageVolDelete(vol, 0)
			}
		}
	}
}

func (s *stack) libvirt() *golibvirt.Libvirt {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Conn.WaitConnected(ctx); err != nil {
		s.t.Fatal(err)
	}
	l, err := s.Conn.Client()
	if err != nil {
		s.t.Fatal(err)
	}
	return l
}

func (s *stack) token(userID int64, role string) string { return s.Keys.Token(s.t, userID, role) }

type answer struct {
	status int
	body   []byte
}

func (a answer) decode(t testing.TB, dst any) {
	t.Helper()
	if err := json.Unmarshal(a.body, dst); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

func (s *stack) call(method, path, token, body string) answer {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.svc.App().Test(req, 30_000)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	apidoc.Check(s.t, req, resp)
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b}
}

type vmJSON struct {
	ID           int64     `json:"id"`
	UUID         string    `json:"uuid"`
	Name         string    `json:"name"`
	CPU          int       `json:"cpu"`
	Memory       int       `json:"memory"`
	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason"`
	OSType       string    `json:"os_type"`
	OwnerID      int64     `json:"owner_id"`
	DiskGB       int       `json:"disk_gb"`
	Host         string    `json:"host"`
	Task         *taskJSON `json:"task"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

type taskJSON struct {
	Action    string    `json:"action"`
	StartedAt time.Time `json:"started_at"`
}

func (s *stack) create(token, name string) vmJSON {
	s.t.Helper()
	a := s.call("POST", "/api/vms", token, fmt.Sprintf(`{"name":%q,"cpu":1,"memory":64,"os_type":"other"}`, name))
	if a.status != http.StatusCreated {
		s.t.Fatalf("create: %d %s", a.status, a.body)
	}
	var vm vmJSON
	a.decode(s.t, &vm)
	return vm
}

// action answers the VM and the message of a 200 or 202, the body of anything else.
func (s *stack) action(token, ref, body string) (int, vmJSON, string) {
	s.t.Helper()
	a := s.call("POST", "/api/vms/"+ref+"/action", token, body)
	var out struct {
		vmJSON
		Message string `json:"message"`
	}
	_ = json.Unmarshal(a.body, &out)
	if a.status != http.StatusOK && a.status != http.StatusAccepted {
		return a.status, vmJSON{}, string(a.body)
	}
	return a.status, out.vmJSON, out.Message
}

func (s *stack) get(token, ref string) vmJSON {
	s.t.Helper()
	a := s.call("GET", "/api/vms/"+ref, token, "")
	if a.status != http.StatusOK {
		s.t.Fatalf("get %s: %d %s", ref, a.status, a.body)
	}
	var vm vmJSON
	a.decode(s.t, &vm)
	return vm
}

func (s *stack) waitStatus(token, ref, want string, within time.Duration) vmJSON {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		vm := s.get(token, ref)
		if vm.Status == want {
			return vm
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("status %s (%s), want %s within %s", vm.Status, vm.StatusReason, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type event struct {
	Key         string
	Traceparent string
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Source      string          `json:"source"`
	OwnerID     int64           `json:"ownerid"`
	Sequence    int64           `json:"sequence"`
	Data        json.RawMessage `json:"data"`
}

// events reads the topic from the start until an event of subject has the type last.
func (s *stack) events(subject, last string) []event {
	s.t.Helper()
	return kafkatest.Read(s.t, s.Broker.ListenAddrs(), topic, func(r *kgo.Record) (event, bool) {
		var e event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			s.t.Fatalf("record %s: %v", r.Value, err)
		}
		e.Key = string(r.Key)
		for _, h := range r.Headers {
			if h.Key == "traceparent" {
				e.Traceparent = string(h.Value)
			}
		}
		return e, e.Subject == subject
	}, func(got []event) bool { return len(got) > 0 && got[len(got)-1].Type == last })
}

func TestLifecycle_CreateStartStopUpdateDelete_EventsInOrder(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "web 1")
	if vm.Status != "Stopped" || vm.ID == 0 || vm.OwnerID != 1 || vm.Host != "test-host" || vm.OSType != "other" {
		t.Fatalf("created %+v", vm)
	}
	if got := s.get(alice, fmt.Sprint(vm.ID)); got.UUID != vm.UUID {
		t.Fatalf("by id: %+v", got)
	}
	if _, err := s.libvirt().DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID))); err != nil {
		t.Fatalf("the libvirt domain uuid is not the VM's: %v", err)
	}

	steps := []struct {
		body, status, message string
	}{
		{`{"action":"start"}`, "Running", "VM started"},
		{`{"action":"pause"}`, "Paused", "VM paused"},
		{`{"action":"resume"}`, "Running", "VM resumed"},
		{`{"action":"restart"}`, "Running", "VM restarted"},
		{`{"action":"stop"}`, "Stopped", "VM stopped"},
		{`{"action":"update","cpu":2,"memory":128}`, "Stopped", "VM updated"},
	}
	for _, step := range steps {
		code, got, msg := s.action(alice, vm.UUID, step.body)
		if code != http.StatusOK || got.Status != step.status || msg != step.message {
			t.Fatalf("%s: %d %+v %s", step.body, code, got, msg)
		}
	}
	if got := s.get(alice, vm.UUID); got.CPU != 2 || got.Memory != 128 {
		t.Fatalf("after update %+v", got)
	}

	a := s.call("DELETE", "/api/vms/"+vm.UUID, alice, "")
	if a.status != http.StatusOK || !bytes.Contains(a.body, []byte(`"vm_uuid":"`+vm.UUID+`"`)) || !bytes.Contains(a.body, []byte(`"message":"VM deleted"`)) {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if a := s.call("GET", "/api/vms/"+vm.UUID, alice, ""); a.status != http.StatusNotFound {
		t.Fatalf("deleted VM still answers: %d", a.status)
	}
	if _, err := s.libvirt().DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID))); !golibvirt.IsNotFound(err) {
		t.Fatalf("domain left behind: %v", err)
	}

	// Every change reached the broker, keyed by the VM, in order, ending with the deletion.
	events := s.events(vm.UUID, "limen.vm.deleted")
	last := int64(0)
	for _, e := range events {
		if e.Key != vm.UUID || e.Source != "vm-service" || e.OwnerID != 1 {
			t.Fatalf("event %+v", e)
		}
		if e.Sequence <= last {
			t.Fatalf("sequence %d after %d: %+v", e.Sequence, last, events)
		}
		last = e.Sequence
	}
	// Created, then at least: running, paused, running, stopped (restart), running, stopped, resized.
	if len(events) < 9 || events[0].Type != "limen.vm.updated" {
		t.Fatalf("%d events, first %s: %+v", len(events), events[0].Type, events)
	}
}

func TestValidation_EveryRuleIs4xxAndChangesNothing(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "taken")
	cases := []struct {
		method, path, body string
		status             int
		message            string
	}{
		{"POST", "/api/vms", `{"cpu":1,"memory":64,"os_type":"other"}`, 400, "Field 'name' is required"},
		{"POST", "/api/vms", `{"name":"a","memory":64,"os_type":"other"}`, 400, "Field 'cpu' is required"},
		{"POST", "/api/vms", `{"name":"a","cpu":"two","memory":64,"os_type":"other"}`, 400, "Invalid value for field 'cpu': expected number"},
		{"POST", "/api/vms", `{"name":"a","cpu":65,"memory":64,"os_type":"other"}`, 400, "Field 'cpu' must be between 1 and 64"},
		{"POST", "/api/vms", `{"name":"a","cpu":1,"memory":63,"os_type":"other"}`, 400, "Field 'memory' must be between 64 and 262144 MiB"},
		{"POST", "/api/vms", `{"name":"a/b","cpu":1,"memory":64,"os_type":"other"}`, 400, "Field 'name' must be 1-64 characters of letters, digits, spaces, '_', '.' or '-'"},
		{"POST", "/api/vms", `{"name":"a","cpu":1,"memory":64,"os_type":"beos"}`, 400, "Invalid os_type: beos"},
		{"POST", "/api/vms", `{"name":"taken","cpu":1,"memory":64,"os_type":"other"}`, 409, "VM name already exists"},
		{"POST", "/api/vms", `{"name":`, 400, "Invalid JSON body"},
		{"GET", "/api/vms/not-a-ref", "", 400, "Invalid VM reference: not-a-ref"},
		{"GET", "/api/vms/" + uuid.NewString(), "", 404, "VM not found"},
		{"GET", "/api/vms/999999", "", 404, "VM not found"},
		{"POST", "/api/vms/" + vm.UUID + "/action", `{"action":"explode"}`, 400, "Invalid action: explode. Valid actions: start, stop, restart, delete, update, pause, resume, force_stop"},
		{"POST", "/api/vms/" + vm.UUID + "/action", `{}`, 400, "Field 'action' is required"},
		{"POST", "/api/vms/" + vm.UUID + "/action", `{"action":"stop"}`, 409, "Cannot stop VM: VM is Stopped"},
		{"POST", "/api/vms/" + vm.UUID + "/action", `{"action":"update","cpu":0,"memory":64}`, 400, "Field 'cpu' must be between 1 and 64"},
		{"POST", "/api/vms/" + vm.UUID + "/action", `{"action":"update"}`, 400, "Field 'cpu' or 'memory' is required for update"},
		{"POST", "/api/vms/" + vm.UUID + "/action", `{"action":"update","memory":63}`, 400, "Field 'memory' must be between 64 and 262144 MiB"},
	}
	for _, c := range cases {
		a := s.call(c.method, c.path, alice, c.body)
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(a.body, &body)
		if a.status != c.status || body.Code != c.status || body.Message != c.message {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, a.status, a.body)
		}
	}
	if a := s.call("GET", "/api/vms", "", ""); a.status != 401 || string(a.body) != `{"code":401,"message":"Authentication required"}` {
		t.Errorf("no token: %d %s", a.status, a.body)
	}
	var list []vmJSON
	s.call("GET", "/api/vms", alice, "").decode(t, &list)
	if len(list) != 1 || list[0].CPU != 1 {
		t.Fatalf("bad input changed something: %+v", list)
	}
	if domains, _, err := s.libvirt().ConnectListAllDomains(1, 0); err != nil || len(domains) != 1 {
		t.Fatalf("domains on the host: %+v %v", domains, err)
	}
}

// A network that can reach the host's services is refused at start-up unless the operator says
// the host's firewall handles it; the isolated default and no NIC at all need nothing.
func TestNew_RefusesANetworkThatReachesTheHostWithoutTheOverride(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, network := range []string{"user-open", "default"} {
		_, err := service.New(context.Background(), service.Config{Network: network}, nil, nil, log, nil)
		if err == nil || !strings.Contains(err.Error(), "LIMEN_VM_NETWORK_UNSAFE=true") {
			t.Errorf("LIMEN_VM_NETWORK=%s: %v, want a refusal naming the override", network, err)
		}
	}
}

// publishUserEvent puts an auth-service user event on the broker, as its outbox relay would.
func (s *stack) publishUserEvent(eventType string, change contract.UserChange) {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Broker.ListenAddrs()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	data, _ := json.Marshal(change)
	value, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": uuid.NewString(), "source": "auth-service",
		"type": eventType, "time": time.Now().UTC(), "data": json.RawMessage(data)})
	record := &kgo.Record{Topic: contract.TopicUserEvents, Key: []byte(fmt.Sprint(change.UserID)), Value: value}
	if err := cl.ProduceSync(context.Background(), record).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// A deleted user's token is refused at once, and the user's VMs go with the user; the internal
// usage route tells auth-service what the user owned.
func TestUserDeleted_TokensRefusedAndVMsDeleted(t *testing.T) {
	s := newStack(t)
	token := s.token(7, "user")
	vm := s.create(token, "owned")
	var usage struct {
		VMs    int `json:"vms"`
		CPU    int `json:"cpu"`
		Memory int `json:"memory"`
	}
	a := s.call("GET", "/internal/owners/7/usage", "peer-secret", "")
	a.decode(t, &usage)
	if a.status != http.StatusOK || usage.VMs != 1 || usage.CPU != 1 || usage.Memory != 64 {
		t.Fatalf("usage: %d %s", a.status, a.body)
	}
	if a := s.call("GET", "/internal/owners/7/usage", token, ""); a.status != http.StatusUnauthorized {
		t.Fatalf("usage with a user's token: %d", a.status)
	}

	deleted := time.Now()
	s.publishUserEvent(contract.TypeUserDeleted, contract.UserChange{UserID: 7, TokenVersion: 1})
	for s.call("GET", "/api/vms", token, "").status != http.StatusUnauthorized {
		if time.Since(deleted) > 5*time.Second {
			t.Fatal("a deleted user's token still works after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("token refused %s after the deletion was published", time.Since(deleted).Round(time.Millisecond))
	admin := s.token(1, "admin")
	for s.call("GET", "/api/vms/"+vm.UUID, admin, "").status != http.StatusNotFound {
		if time.Since(deleted) > 30*time.Second {
			t.Fatal("the deleted user's VM is still there after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A changed role revokes tokens signed before it; a token of the new version works.
func TestUserChanged_OlderTokensRefused(t *testing.T) {
	s := newStack(t)
	old := s.token(8, "admin")
	if a := s.call("GET", "/api/vms?all=true", old, ""); a.status != http.StatusOK {
		t.Fatalf("before: %d", a.status)
	}
	s.publishUserEvent(contract.TypeUserChanged, contract.UserChange{UserID: 8, TokenVersion: 1})
	for started := time.Now(); s.call("GET", "/api/vms?all=true", old, "").status != http.StatusUnauthorized; time.Sleep(10 * time.Millisecond) {
		if time.Since(started) > 5*time.Second {
			t.Fatal("a token of an older version still works after 5 s")
		}
	}
	claims := jwttest.Claims(8, "user")
	claims.Version = 1
	if a := s.call("GET", "/api/vms", s.Keys.Sign(t, claims), ""); a.status != http.StatusOK {
		t.Fatalf("a token of the new version: %d %s", a.status, a.body)
	}
}
