package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/contract"
	"limen/libs/telemetry"
	"limen/libs/testkit"
	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/pgtest"
	"limen/libs/testkit/servicetest"
	"limen/quota-service/internal/service"
	"limen/quota-service/migrations"
)

func TestMain(m *testing.M) { testkit.Main(m, pgtest.StartShared) }

const internalToken = "peer-secret"

// stack is one quota-service over the component-test dependencies (servicetest without libvirt: a
// fresh database, a broker of its own, a JWKS issuer), serving on a loopback port, with a stand-in
// for auth-service's internal user route.
type stack struct {
	*servicetest.Stack
	t    testing.TB
	svc  *service.Service
	base string

	mu    sync.Mutex
	users map[int64]bool // the users auth-service knows
}

func newStack(t testing.TB, configure ...func(*service.Config)) *stack {
	t.Helper()
	return newStackWith(t, nil, configure...)
}

// newStackWith is newStack with telemetry (nil: none), which serves /metrics.
func newStackWith(t testing.TB, tel *telemetry.Telemetry, configure ...func(*service.Config)) *stack {
	t.Helper()
	deps := servicetest.New(t, servicetest.Options{Schema: "quota", Migrations: migrations.FS, NoLibvirt: true,
		Partitions: map[string]int32{contract.TopicVMEvents: 3, contract.TopicUserEvents: 1}})
	s := &stack{Stack: deps, t: t, users: map[int64]bool{}}
	auth := newAuthStandIn(s)
	t.Cleanup(auth.Close)
	cfg := service.Config{
		Settings: deps.Settings(), KafkaBrokers: deps.Broker.ListenAddrs(), InternalToken: internalToken, AuthServiceURL: auth.URL,
		MaxVMs: 10, MaxCPU: 16, MaxMemoryMiB: 32768, ReservationTTL: time.Minute, ReconcileInterval: 100 * time.Millisecond,
	}
	for _, c := range configure {
		c(&cfg)
	}
	ctx, cancel := context.WithCancel(deps.Ctx)
	svc, err := service.New(ctx, cfg, deps.Pool, deps.Log, tel)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.svc = svc
	apidoc.CheckRoutes(t, service.Name, svc.App())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.base = "http://" + ln.Addr().String()
	runDone, serveDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); _ = svc.Run(ctx) }()
	go func() { defer close(serveDone); _ = svc.App().Listener(ln) }()
	t.Cleanup(func() {
		_ = svc.App().Shutdown()
		<-serveDone
		cancel()
		<-runDone
	})
	return s
}

// newAuthStandIn answers GET /internal/users/{id} as auth-service does, for the users s knows.
func newAuthStandIn(s *stack) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+internalToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/internal/users/"), 10, 64)
		s.mu.Lock()
		known := err == nil && s.users[id]
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !known {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":404,"message":"User not found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(contract.InternalUser{ID: id, Username: "user" + strconv.FormatInt(id, 10), Role: "user", Approved: true})
	}))
}

func (s *stack) knowUser(id int64, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = known
}

func (s *stack) token(userID int64, role string) string { return s.Keys.Token(s.t, userID, role) }

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t testing.TB, dst any) {
	t.Helper()
	if err := json.Unmarshal(a.body, dst); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

func (a answer) message(t testing.TB) string {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	a.decode(t, &e)
	if e.Code != a.status {
		t.Errorf("error body code %d, status %d", e.Code, a.status)
	}
	return e.Message
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}

// call sends a request with authorization (a bearer token, or "" for none) and holds the answer to
// docs/openapi.yaml. Safe for concurrent use.
func (s *stack) call(method, path, authorization, body string) answer {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", "Bearer "+authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	return s.answerOf(req, resp)
}

// answerOf reads resp, held to docs/openapi.yaml.
func (s *stack) answerOf(req *http.Request, resp *http.Response) answer {
	s.t.Helper()
	apidoc.Check(s.t, req, resp)
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

type quotaUsage struct {
	Quota struct {
		ID        int64 `json:"id"`
		UserID    int64 `json:"user_id"`
		MaxVMs    int   `json:"max_vms"`
		MaxCPU    int   `json:"max_cpu"`
		MaxMemory int   `json:"max_memory"`
	} `json:"quota"`
	Usage usage `json:"usage"`
}

type usage struct {
	VMs    int `json:"vms"`
	CPU    int `json:"cpu"`
	Memory int `json:"memory"`
}

func (s *stack) quota(userID int64) quotaUsage {
	s.t.Helper()
	a := s.call("GET", "/api/quota", s.token(userID, "user"), "")
	if a.status != http.StatusOK {
		s.t.Fatalf("GET /api/quota: %d %s", a.status, a.body)
	}
	var q quotaUsage
	a.decode(s.t, &q)
	return q
}

func (s *stack) setLimits(userID int64, body string) quotaUsage {
	s.t.Helper()
	s.knowUser(userID, true)
	a := s.call("PUT", "/api/quota", s.token(1, "admin"), fmt.Sprintf(`{"user_id":%d,%s}`, userID, body))
	if a.status != http.StatusOK {
		s.t.Fatalf("PUT /api/quota: %d %s", a.status, a.body)
	}
	var q quotaUsage
	a.decode(s.t, &q)
	return q
}

type reservation = contract.QuotaReservation

func (s *stack) reserve(key string, userID int64, vm string, vms, cpu, memory int) (answer, reservation) {
	s.t.Helper()
	body, _ := json.Marshal(contract.QuotaReserve{Key: key, UserID: userID, VMUUID: vm, VMs: vms, CPU: cpu, Memory: memory})
	a := s.call("POST", contract.InternalReservationsRoute, internalToken, string(body))
	var r reservation
	if a.status == http.StatusOK || a.status == http.StatusCreated {
		a.decode(s.t, &r)
	}
	return a, r
}

func (s *stack) commit(key string, cpu, memory int, version int64) answer {
	s.t.Helper()
	body, _ := json.Marshal(contract.QuotaCommit{CPU: cpu, Memory: memory, Version: version})
	return s.call("POST", contract.InternalReservationCommitPath(key), internalToken, string(body))
}

func (s *stack) release(key string) answer {
	s.t.Helper()
	return s.call("POST", contract.InternalReservationReleasePath(key), internalToken, "")
}

func (s *stack) releaseVM(vm string, userID int64) answer {
	s.t.Helper()
	return s.call("POST", contract.InternalQuotaVMReleasePath(vm), internalToken, fmt.Sprintf(`{"user_id":%d}`, userID))
}

// createVM reserves and commits a new VM of userID, as vm-service creates one.
func (s *stack) createVM(userID int64, cpu, memory int) string {
	s.t.Helper()
	vm := uuid.NewString()
	if a, _ := s.reserve("create:"+vm, userID, vm, 1, cpu, memory); a.status != http.StatusCreated {
		s.t.Fatalf("reserve: %d %s", a.status, a.body)
	}
	if a := s.commit("create:"+vm, cpu, memory, 1); a.status != http.StatusOK {
		s.t.Fatalf("commit: %d %s", a.status, a.body)
	}
	return vm
}

// stored is the usage on the user's row, straight from the database.
func (s *stack) stored(userID int64) usage {
	s.t.Helper()
	var u usage
	if err := s.Pool.QueryRow(context.Background(), `SELECT vms, cpu, memory FROM quotas WHERE user_id = $1`, userID).
		Scan(&u.VMs, &u.CPU, &u.Memory); err != nil {
		s.t.Fatal(err)
	}
	return u
}

// checkInvariant fails the test when any quota's usage differs from its live VMs plus the growth of
// its pending reservations, or exceeds a limit (tests that never lower limits).
func (s *stack) checkInvariant() {
	s.t.Helper()
	var drifted, over int
	if err := s.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM quotas q WHERE (q.vms, q.cpu, q.memory) <> (
			(SELECT count(*) FROM vms WHERE user_id = q.user_id AND deleted_at IS NULL) +
			(SELECT coalesce(sum(greatest(vms, 0)), 0) FROM reservations WHERE user_id = q.user_id AND state = 'pending'),
			(SELECT coalesce(sum(cpu), 0) FROM vms WHERE user_id = q.user_id AND deleted_at IS NULL) +
			(SELECT coalesce(sum(greatest(cpu, 0)), 0) FROM reservations WHERE user_id = q.user_id AND state = 'pending'),
			(SELECT coalesce(sum(memory), 0) FROM vms WHERE user_id = q.user_id AND deleted_at IS NULL) +
			(SELECT coalesce(sum(greatest(memory, 0)), 0) FROM reservations WHERE user_id = q.user_id AND state = 'pending'))),
		(SELECT count(*) FROM quotas WHERE vms > max_vms OR cpu > max_cpu OR memory > max_memory)`).Scan(&drifted, &over); err != nil {
		s.t.Fatal(err)
	}
	if drifted != 0 || over != 0 {
		s.t.Errorf("invariant: %d quotas disagree with their VMs and reservations, %d are over a limit", drifted, over)
	}
}

// eventually polls cond until it holds or 15 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15 s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publish writes a CloudEvent to the stack's broker as the services' outbox relays do, always to
// partition 0, so that the events a test publishes are read in the order it published them.
func (s *stack) publish(topic, subject, eventType string, ownerID, sequence int64, data any) {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Broker.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	payload, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": uuid.NewString(), "source": "test", "type": eventType, "subject": subject,
		"time": time.Now().UTC().Format(time.RFC3339Nano), "datacontenttype": "application/json",
		"ownerid": ownerID, "sequence": sequence, "data": data,
	})
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(subject), Value: payload, Partition: 0}).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) publishVM(vm string, owner int64, cpu, memory int, version int64) {
	s.t.Helper()
	s.publish(contract.TopicVMEvents, vm, contract.TypeVMUpdated, owner, version,
		map[string]any{"id": 1, "uuid": vm, "name": "vm", "cpu": cpu, "memory": memory, "status": "Stopped", "owner_id": owner})
}

func (s *stack) publishVMDeleted(vm string, owner int64, version int64) {
	s.t.Helper()
	s.publish(contract.TopicVMEvents, vm, contract.TypeVMDeleted, owner, version, map[string]any{"id": 1, "uuid": vm})
}
