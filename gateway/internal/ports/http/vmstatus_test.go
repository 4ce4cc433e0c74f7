package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"limen/gateway/internal/adapters/kafka"
	"limen/gateway/internal/adapters/vmclient"
	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/revocation"
	"limen/libs/testkit/jwttest"
	"limen/libs/web"
)

const (
	userA, userB, adminID = int64(7), int64(8), int64(1)
	vmA                   = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	vmA2                  = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa2"
	vmB                   = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

func vmJSON(id int64, uuid string, owner int64, status string) map[string]any {
	return map[string]any{"id": id, "uuid": uuid, "name": "vm-" + strconv.FormatInt(id, 10), "cpu": 1, "memory": 512,
		"status": status, "os_type": "ubuntu-server", "owner_id": owner,
		"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
}

// vmService answers GET /api/vms as vm-service does: it verifies the forwarded token and lists the
// caller's VMs, or everyone's for an admin asking ?all=true.
type vmService struct {
	mu  sync.Mutex
	vms []map[string]any
	url string
	// lists counts the list calls per user.
	lists map[int64]int
}

func startVMService(t *testing.T, verifier *authn.Verifier, vms ...map[string]any) *vmService {
	t.Helper()
	s := &vmService{vms: vms, lists: map[int64]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := verifier.Verify(authn.BearerToken(r.Header.Get("Authorization")))
		if err != nil || r.URL.Path != "/api/vms" {
			http.Error(w, `{"code":401,"message":"Authentication required"}`, http.StatusUnauthorized)
			return
		}
		all := claims.IsAdmin() && r.URL.Query().Get("all") == "true"
		s.mu.Lock()
		s.lists[claims.UserID]++
		out := []map[string]any{}
		for _, vm := range s.vms {
			if all || vm["owner_id"] == claims.UserID {
				out = append(out, vm)
			}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *vmService) remove(uuid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, vm := range s.vms {
		if vm["uuid"] == uuid {
			s.vms = append(s.vms[:i], s.vms[i+1:]...)
			return
		}
	}
}

type liveOptions struct {
	ping       time.Duration
	queue      int
	writeWait  time.Duration
	origins    []string
	maxPerUser int
	// lister stands in for the vm-service client the first lists come from (nil: the real client).
	lister app.VMLister
}

// liveGateway is the gateway with its live status socket fed by a real Kafka consumer reading an
// in-process broker.
type liveGateway struct {
	addr   string
	issuer *jwttest.KeyIssuer
	hub    *app.VMStatusHub
	vms    *vmService
	// revoked is the list the gateway's verifier consults, as the revocation follower fills it.
	revoked *revocation.List
	broker  []string
	// stop is the gateway's shutdown signal.
	stop context.CancelFunc
}

func startLiveGateway(t *testing.T, opts liveOptions) *liveGateway {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, contract.TopicVMEvents, contract.TopicMediaEvents))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)

	issuer := jwttest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	revoked := revocation.NewList()
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: issuer.JWKSURL, Issuer: jwttest.Issuer, Audience: jwttest.Audience,
		Revocations: revoked})
	if err != nil {
		t.Fatal(err)
	}
	vms := startVMService(t, verifier, vmJSON(1, vmA, userA, "Stopped"), vmJSON(2, vmA2, userA, "Running"), vmJSON(3, vmB, userB, "Stopped"))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := app.NewVMStatusHub(opts.queue)
	consumer := kafka.NewConsumer(cluster.ListenAddrs(), hub, log)
	consumer.MaxWait = 100 * time.Millisecond // quick to stop at the end of the test
	consumed := make(chan struct{})
	go func() { defer close(consumed); _ = consumer.Run(ctx) }()
	select {
	case <-consumer.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("consumer not ready")
	}

	var lister app.VMLister = vmclient.New(vms.url)
	if opts.lister != nil {
		lister = opts.lister
	}
	application := app.Application{Queries: app.Queries{
		CheckHealth:   app.NewCheckHealthHandler(app.HealthSources{Services: readinessOf(nil), Timeout: time.Second, Now: time.Now}),
		WatchVMStatus: app.WatchVMStatusHandler{Hub: hub, VMs: lister},
	}}
	status := porthttp.NewVMStatus(ctx, application.Queries.WatchVMStatus, verifier, log)
	status.PingInterval, status.WriteTimeout = opts.ping, opts.writeWait
	status.AllowedOrigins, status.MaxPerUser = opts.origins, opts.maxPerUser
	revoked.Subscribe(status.UserChanged)
	fiberApp := web.NewApp(web.AppConfig{Service: "gateway", Logger: log})
	porthttp.Mount(fiberApp, application, porthttp.Routes{Verifier: verifier, VMStatus: status,
		Proxy: porthttp.NewProxy(map[domain.Upstream]string{domain.UpstreamVM: vms.url}, time.Second)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fiberApp.Listener(ln) }()
	t.Cleanup(func() {
		cancel()
		_ = fiberApp.Shutdown()
		<-consumed
	})
	return &liveGateway{addr: ln.Addr().String(), issuer: issuer, hub: hub, vms: vms, revoked: revoked, broker: cluster.ListenAddrs(), stop: cancel}
}

// askAll follows a token in the socket's query: an admin's socket then shows everyone's VMs.
const askAll = "&all=true"

func (g *liveGateway) dial(t *testing.T, token string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+g.addr+porthttp.VMStatusPath+"?token="+token, nil)
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, resp, err
}

// connect opens a socket as the user and checks that the first message is their list.
func (g *liveGateway) connect(t *testing.T, token string) (*websocket.Conn, message) {
	t.Helper()
	conn, _, err := g.dial(t, token)
	if err != nil {
		t.Fatal(err)
	}
	first := read(t, conn)
	if first.Type != "vm_list" {
		t.Fatalf("first message %+v", first)
	}
	return conn, first
}

// produce publishes CloudEvents the way the services' outbox relay does: keyed by VM uuid.
func (g *liveGateway) produce(t *testing.T, topic, typ, vm string, owner, seq int64, data any) {
	t.Helper()
	ce := event.New()
	ce.SetID(strconv.FormatInt(time.Now().UnixNano(), 10))
	ce.SetSource("vm-service")
	ce.SetType(typ)
	ce.SetSubject(vm)
	ce.SetTime(time.Now())
	ce.SetExtension("ownerid", owner)
	ce.SetExtension("sequence", seq)
	if err := ce.SetData(event.ApplicationJSON, data); err != nil {
		t.Fatal(err)
	}
	value, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(g.broker...), Topic: topic, Balancer: &kafkago.Hash{}, BatchTimeout: time.Millisecond,
		Transport: &kafkago.Transport{MetadataTTL: 100 * time.Millisecond}}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte(vm), Value: value}); err != nil {
		t.Fatal(err)
	}
}

func (g *liveGateway) update(t *testing.T, vm string, owner, seq int64, status string) {
	t.Helper()
	id := map[string]int64{vmA: 1, vmA2: 2, vmB: 3}[vm]
	g.produce(t, "limen.vm.events", "limen.vm.updated", vm, owner, seq, vmJSON(id, vm, owner, status))
}

type message struct {
	Type      string           `json:"type"`
	VMs       []map[string]any `json:"vms"`
	VM        map[string]any   `json:"vm"`
	Seq       int64            `json:"seq"`
	VMUUID    string           `json:"vm_uuid"`
	MediaPath string           `json:"media_path"`
	Attached  bool             `json:"attached"`
}

func read(t *testing.T, conn *websocket.Conn) message {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return m
}

// readNothing checks that no message arrives for a while; the connection is unusable afterwards.
func readNothing(t *testing.T, conn *websocket.Conn, wait time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	if _, raw, err := conn.ReadMessage(); err == nil {
		t.Fatalf("unexpected message %s", raw)
	}
}

// closeCode reads until the server closes the connection and returns the close code.
func closeCode(t *testing.T, conn *websocket.Conn, within time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		_, _, err := conn.ReadMessage()
		var closed *websocket.CloseError
		if errors.As(err, &closed) {
			return closed.Code
		}
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
	}
}

func uuidsOf(vms []map[string]any) []string {
	var out []string
	for _, vm := range vms {
		out = append(out, vm["uuid"].(string))
	}
	return out
}

func TestVMStatus_BadToken_RefusesTheUpgradeWith401(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	expired := jwttest.Claims(userA, authn.RoleUser)
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	refresh := jwttest.Claims(userA, authn.RoleUser)
	refresh.Type = authn.TokenTypeRefresh
	for name, token := range map[string]string{
		"missing": "", "malformed": "abc", "expired": g.issuer.Sign(t, expired), "refresh token": g.issuer.Sign(t, refresh),
		"another key": jwttest.New(t).Token(t, userA, authn.RoleUser),
	} {
		t.Run(name, func(t *testing.T) {
			conn, resp, err := g.dial(t, token)
			if err == nil || conn != nil || resp == nil || resp.StatusCode != 401 {
				t.Fatalf("upgraded or wrong status: %v %+v", err, resp)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != `{"code":401,"message":"Authentication required"}` {
				t.Fatalf("body %s", body)
			}
		})
	}
}

func TestVMStatus_BearerHeaderIsAccepted_PlainGETNeedsAnUpgrade(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	token := g.issuer.Token(t, userA, authn.RoleUser)
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+g.addr+porthttp.VMStatusPath, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if m := read(t, conn); m.Type != "vm_list" || len(m.VMs) != 2 {
		t.Fatalf("%+v", m)
	}
	req, _ := http.NewRequest("GET", "http://"+g.addr+porthttp.VMStatusPath, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: %d", resp.StatusCode)
	}
}

func TestVMStatus_UserGetsOwnListAndOwnUpdates_AdminGetsEveryonesAskingForAll(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	user, list := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	if got := uuidsOf(list.VMs); len(got) != 2 || got[0] != vmA || got[1] != vmA2 {
		t.Fatalf("user's list: %v", got)
	}
	// A user asking for all still gets their own.
	userAll, list := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser)+askAll)
	if got := uuidsOf(list.VMs); len(got) != 2 {
		t.Fatalf("user's list asking for all: %v", got)
	}
	adminToken := g.issuer.Token(t, adminID, authn.RoleAdmin)
	adm, adminList := g.connect(t, adminToken+askAll)
	if len(adminList.VMs) != 3 {
		t.Fatalf("admin's list: %v", uuidsOf(adminList.VMs))
	}
	// Not asking for all, the admin's socket is their own VMs (they own none), as GET /api/vms.
	admOwn, ownList := g.connect(t, adminToken)
	if len(ownList.VMs) != 0 {
		t.Fatalf("admin's own list: %v", uuidsOf(ownList.VMs))
	}

	g.update(t, vmB, userB, 1, "Running")
	g.update(t, vmA, userA, 1, "Running")

	m := read(t, user)
	if m.Type != "vm_update" || m.VM["uuid"] != vmA || m.VM["status"] != "Running" || m.Seq != 1 || m.VM["owner_id"] != float64(userA) {
		t.Fatalf("user got %+v", m)
	}
	seen := map[string]bool{}
	for range 2 {
		m := read(t, adm)
		if m.Type != "vm_update" {
			t.Fatalf("admin got %+v", m)
		}
		seen[m.VM["uuid"].(string)] = true
	}
	if !seen[vmA] || !seen[vmB] {
		t.Fatalf("admin saw %v", seen)
	}
	if m := read(t, userAll); m.Type != "vm_update" || m.VM["uuid"] != vmA {
		t.Fatalf("user asking for all got %+v", m)
	}
	// Both events have reached the hub (the admin got them): B's must not follow for A, and neither
	// reaches the admin's own socket.
	readNothing(t, user, 200*time.Millisecond)
	readNothing(t, userAll, 100*time.Millisecond)
	readNothing(t, admOwn, 100*time.Millisecond)
}

func TestVMStatus_StaleAndRepeatedUpdatesAreDropped(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	user, _ := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	for _, seq := range []int64{5, 3, 5, 6} {
		g.update(t, vmA, userA, seq, "Running")
	}
	if a, b := read(t, user), read(t, user); a.Seq != 5 || b.Seq != 6 {
		t.Fatalf("got seq %d, %d", a.Seq, b.Seq)
	}
	readNothing(t, user, 200*time.Millisecond)
}

func TestVMStatus_DeletionIsFollowedByAFreshList(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	user, _ := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	g.vms.remove(vmA)
	g.produce(t, "limen.vm.events", "limen.vm.deleted", vmA, userA, 9, vmJSON(1, vmA, userA, "Stopped"))

	del := read(t, user)
	if del.Type != "vm_delete" || del.Seq != 9 || del.VM["uuid"] != vmA || del.VM["id"] != float64(1) || len(del.VM) != 2 {
		t.Fatalf("%+v", del)
	}
	list := read(t, user)
	if got := uuidsOf(list.VMs); list.Type != "vm_list" || len(got) != 1 || got[0] != vmA2 {
		t.Fatalf("%+v", list)
	}
	// A late update of the deleted VM does not bring it back.
	g.update(t, vmA, userA, 8, "Running")
	readNothing(t, user, 200*time.Millisecond)
}

func TestVMStatus_MediaChange(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	user, _ := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	g.produce(t, "limen.media.events", "limen.media.changed", vmA2, userA, 1,
		map[string]any{"vm_uuid": vmA2, "media_path": "/var/lib/limen/isos/debian.iso", "attached": true})
	m := read(t, user)
	if m.Type != "media_update" || m.VMUUID != vmA2 || m.MediaPath != "/var/lib/limen/isos/debian.iso" || !m.Attached || m.Seq != 1 {
		t.Fatalf("%+v", m)
	}
}

func TestVMStatus_ExpiredTokenClosesWith4401(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	claims := jwttest.Claims(userA, authn.RoleUser)
	claims.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Second))
	user, _ := g.connect(t, g.issuer.Sign(t, claims))
	if code := closeCode(t, user, 5*time.Second); code != porthttp.CloseTokenExpired {
		t.Fatalf("close code %d", code)
	}
}

func TestVMStatus_RevokedTokenClosesWith4403_OtherUsersUnaffected(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	tokenA := g.issuer.Token(t, userA, authn.RoleUser)
	revokedUser, _ := g.connect(t, tokenA)
	other, _ := g.connect(t, g.issuer.Token(t, userB, authn.RoleUser))
	g.revoked.Apply(contract.TypeUserDeleted, contract.UserChange{UserID: userA}, time.Now())
	if code := closeCode(t, revokedUser, 5*time.Second); code != porthttp.CloseAccessRevoked {
		t.Fatalf("close code %d", code)
	}
	if _, resp, err := g.dial(t, tokenA); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("the revoked token opened a socket again: %v", err)
	}
	g.update(t, vmB, userB, 1, "Running")
	if m := read(t, other); m.Type != "vm_update" {
		t.Fatalf("the other user's socket: %+v", m)
	}
}

func TestVMStatus_ShutdownClosesWith1001(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	user, _ := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	g.stop()
	if code := closeCode(t, user, 5*time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d", code)
	}
}

func TestVMStatus_ClientThatDoesNotAnswerPingsIsClosed_OthersUnaffected(t *testing.T) {
	g := startLiveGateway(t, liveOptions{ping: 100 * time.Millisecond})
	admin := g.issuer.Token(t, adminID, authn.RoleAdmin) + askAll
	mute, _ := g.connect(t, admin) // never reads again, so never answers a ping
	live, _ := g.connect(t, admin)
	// The live client reads continuously, which answers pings.
	got := make(chan message, 10)
	go func() {
		for {
			_, raw, err := live.ReadMessage()
			if err != nil {
				close(got)
				return
			}
			var m message
			_ = json.Unmarshal(raw, &m)
			got <- m
		}
	}()

	deadline := time.Now().Add(3 * time.Second)
	for g.hub.Clients() > 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.hub.Clients(); n != 1 {
		t.Fatalf("%d clients still connected", n)
	}
	g.update(t, vmB, userB, 1, "Paused")
	select {
	case m := <-got:
		if m.Type != "vm_update" || m.VM["status"] != "Paused" {
			t.Fatalf("%+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the answering client was closed or starved")
	}
	if code := closeCode(t, mute, 2*time.Second); code != websocket.ClosePolicyViolation {
		t.Fatalf("mute client closed with %d", code)
	}
}

func TestVMStatus_SlowClientIsCutWithoutDelayingOthers(t *testing.T) {
	g := startLiveGateway(t, liveOptions{queue: 4, writeWait: 500 * time.Millisecond})
	admin := g.issuer.Token(t, adminID, authn.RoleAdmin) + askAll
	slow, _ := g.connect(t, admin) // stops reading: its socket buffers fill, then its queue
	fast, _ := g.connect(t, admin)

	// Big events fill the slow client's socket buffers quickly; the fast client must get each one
	// promptly while the slow one falls behind.
	start := time.Now()
	g.publishUntilOneIsLeft(t, fast, 64<<10, 2000)
	t.Logf("cut after %s", time.Since(start))
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("fan-out took %s", elapsed)
	}
	_ = slow // closed by the server; its buffered messages are not read
}

// publishUntilOneIsLeft publishes updates of vmB carrying notes of the given size until the hub has
// one client left, fast, which must get each in turn; more than most updates fail the test.
func (g *liveGateway) publishUntilOneIsLeft(t *testing.T, fast *websocket.Conn, notes int, most int64) {
	t.Helper()
	vm := vmJSON(3, vmB, userB, "Running")
	vm["notes"] = strings.Repeat("x", notes)
	raw, _ := json.Marshal(vm)
	for seq := int64(1); g.hub.Clients() > 1; seq++ {
		if seq > most {
			t.Fatal("the client that stopped reading was never cut")
		}
		g.hub.Publish(domain.VMEvent{Kind: domain.VMUpdated, VMUUID: vmB, OwnerID: userB, Seq: seq, VM: raw})
		if m := read(t, fast); m.Seq != seq {
			t.Fatalf("fast client got seq %d, want %d", m.Seq, seq)
		}
	}
}
