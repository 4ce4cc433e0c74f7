package http_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"

	"limen/auth-service/internal/service"
	"limen/libs/contract"
)

// vmStandIn answers vm-service's internal routes per the contract types: user n owns n-1 VMs of 2
// vCPUs and 1024 MiB each.
type vmStandIn struct {
	url  string
	down atomic.Bool
	mu   sync.Mutex
	// usageCalls are the ?ids= of every call to the usage route.
	usageCalls []string
}

func standInVMs(owner int64) []contract.InternalVM {
	vms := []contract.InternalVM{}
	for i := int64(1); i < owner; i++ {
		id := owner*100 + i
		vms = append(vms, contract.InternalVM{ID: id, UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", id), Name: "vm" + strconv.FormatInt(i, 10),
			OwnerID: owner, Status: "Stopped", Host: "localhost", CPU: 2, Memory: 1024})
	}
	return vms
}

func newVMStandIn(t *testing.T) *vmStandIn {
	t.Helper()
	s := &vmStandIn{}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		if c.Get(fiber.HeaderAuthorization) != "Bearer peer-secret" {
			return c.SendStatus(fiber.StatusUnauthorized)
		}
		if s.down.Load() {
			return c.SendStatus(fiber.StatusServiceUnavailable)
		}
		return c.Next()
	})
	app.Get(contract.InternalOwnersUsageRoute, func(c *fiber.Ctx) error {
		ids := strings.Clone(c.Query("ids")) // Fiber reuses the buffer it aliases
		s.mu.Lock()
		s.usageCalls = append(s.usageCalls, ids)
		s.mu.Unlock()
		out := contract.OwnersUsage{}
		for _, raw := range strings.Split(ids, ",") {
			id, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return c.SendStatus(fiber.StatusBadRequest)
			}
			n := len(standInVMs(id))
			out[raw] = contract.OwnerUsage{VMs: n, CPU: 2 * n, Memory: 1024 * n}
		}
		return c.JSON(out)
	})
	app.Get(contract.InternalOwnerVMsRoute, func(c *fiber.Ctx) error {
		id, err := c.ParamsInt("id")
		if err != nil {
			return c.SendStatus(fiber.StatusBadRequest)
		}
		return c.JSON(standInVMs(int64(id)))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	s.url = "http://" + ln.Addr().String()
	return s
}

func (s *vmStandIn) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.usageCalls...)
}

// expectUsage checks an admin user entry's usage fields against the stand-in's VMs of its owner.
func expectUsage(t *testing.T, user map[string]any) {
	t.Helper()
	id := int64(user["id"].(float64))
	n := float64(len(standInVMs(id)))
	if user["vm_count"] != n || user["total_cpu"] != 2*n || user["total_memory"] != 1024*n {
		t.Fatalf("user %d: usage %v, want %v VMs", id, user, n)
	}
}

func TestAdminUsers_ListAndDetailCarryVMs(t *testing.T) {
	vms := newVMStandIn(t)
	c := newService(t, func(cfg *service.Config) { cfg.VMServiceURL, cfg.InternalToken = vms.url, "peer-secret" })
	admin := c.adminToken()
	c.registerApproved("ada", "password1")
	c.do("POST", "/api/auth/register", "", creds("bob", "password1")).expect(t, 201, "")

	list := c.do("GET", "/api/admin/users", admin, "")
	list.expect(t, 200, "")
	if list.header.Get("X-Total-Count") != "3" || len(list.list) != 3 {
		t.Fatalf("list %v %s", list.header, list.raw)
	}
	for i, entry := range list.list {
		user := entry.(map[string]any)
		if user["id"] != float64(i+1) || user["username"] == nil || user["uuid"] == nil {
			t.Fatalf("entry %d: %v", i, user)
		}
		expectUsage(t, user)
	}
	page := c.do("GET", "/api/admin/users?limit=2&offset=1", admin, "")
	page.expect(t, 200, "")
	if page.header.Get("X-Total-Count") != "3" || len(page.list) != 2 || page.list[0].(map[string]any)["username"] != "ada" {
		t.Fatalf("page %v %s", page.header, page.raw)
	}
	// One call to vm-service a page, for the page's users.
	if calls := vms.calls(); len(calls) != 2 || calls[0] != "1,2,3" || calls[1] != "2,3" {
		t.Fatalf("usage calls %q", calls)
	}

	detail := c.do("GET", "/api/admin/users/3", admin, "")
	detail.expect(t, 200, "")
	expectUsage(t, detail.body)
	got, _ := detail.body["vms"].([]any)
	if len(got) != 2 || got[0].(map[string]any)["owner_id"] != float64(3) || got[1].(map[string]any)["name"] != "vm2" {
		t.Fatalf("detail %s", detail.raw)
	}
	root := c.do("GET", "/api/admin/users/1", admin, "")
	root.expect(t, 200, "")
	if !strings.Contains(root.raw, `"vms":[]`) {
		t.Fatalf("a user without VMs: %s", root.raw)
	}
	expectUsage(t, root.body)

	// vm-service down: the users still, without what it would have said.
	vms.down.Store(true)
	list = c.do("GET", "/api/admin/users", admin, "")
	list.expect(t, 200, "")
	if list.header.Get("X-Total-Count") != "3" || len(list.list) != 3 {
		t.Fatalf("list with vm-service down %s", list.raw)
	}
	for _, entry := range list.list {
		for _, field := range []string{"vm_count", "total_cpu", "total_memory"} {
			if _, ok := entry.(map[string]any)[field]; ok {
				t.Fatalf("%s while vm-service is down: %s", field, list.raw)
			}
		}
	}
	detail = c.do("GET", "/api/admin/users/3", admin, "")
	detail.expect(t, 200, "")
	if _, ok := detail.body["vms"]; ok || detail.body["username"] != "bob" {
		t.Fatalf("detail with vm-service down %s", detail.raw)
	}
}

// Without vm-service nobody owns VMs.
func TestAdminUsers_WithoutVMService(t *testing.T) {
	c := newService(t, nil)
	admin := c.adminToken()
	list := c.do("GET", "/api/admin/users", admin, "")
	list.expect(t, 200, "")
	user := list.list[0].(map[string]any)
	if list.header.Get("X-Total-Count") != "1" || user["vm_count"] != float64(0) || user["total_cpu"] != float64(0) || user["total_memory"] != float64(0) {
		t.Fatalf("list %s", list.raw)
	}
	detail := c.do("GET", "/api/admin/users/1", admin, "")
	detail.expect(t, 200, "")
	if !strings.Contains(detail.raw, `"vms":[]`) || detail.body["vm_count"] != float64(0) {
		t.Fatalf("detail %s", detail.raw)
	}
	// An empty page asks nobody and is an empty array.
	empty := c.do("GET", "/api/admin/users?offset=5", admin, "")
	empty.expect(t, 200, "")
	if empty.raw != "[]" || empty.header.Get("X-Total-Count") != "1" {
		t.Fatalf("empty page %v %s", empty.header, empty.raw)
	}
}

func TestAdminUsers_ApproveWithoutBodyApproves(t *testing.T) {
	c := newService(t, nil)
	admin := c.adminToken()
	r := c.do("POST", "/api/auth/register", "", creds("kim", "password1"))
	r.expect(t, 201, "")
	uid := ftoa(r.body["user"].(map[string]any)["id"].(float64))
	c.login("kim", "password1").expect(t, 403, "Account pending approval")

	a := c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, "")
	a.expect(t, 200, "")
	if a.body["approved"] != true {
		t.Fatalf("approve without a body: %s", a.raw)
	}
	login := c.login("kim", "password1")
	login.expect(t, 200, "")
	if claims := tokenClaims(t, login.body["token"].(string)); claims["approved"] != true {
		t.Fatalf("approved user's token claims %v", claims)
	}

	if a := c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, `{"approved":false}`); a.status != 200 || a.body["approved"] != false {
		t.Fatalf("suspend: %d %s", a.status, a.raw)
	}
	if a := c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, `{}`); a.status != 200 || a.body["approved"] != true {
		t.Fatalf("approve with {}: %d %s", a.status, a.raw)
	}
}

// TestInternalUser_ForPeerServicesOnly: a peer with the internal token learns whether an account
// exists; without it, nothing.
func TestInternalUser_ForPeerServicesOnly(t *testing.T) {
	c := newService(t, func(cfg *service.Config) { cfg.InternalToken = "peer-secret" })
	r := c.do("POST", "/api/auth/register", "", creds("lin", "password1"))
	r.expect(t, 201, "")
	uid := ftoa(r.body["user"].(map[string]any)["id"].(float64))

	peer := c.do("GET", "/internal/users/"+uid, "peer-secret", "")
	peer.expect(t, 200, "")
	if peer.body["username"] != "lin" || peer.body["role"] != "user" || peer.body["approved"] != false || ftoa(peer.body["id"].(float64)) != uid {
		t.Fatalf("internal user: %s", peer.raw)
	}
	c.do("GET", "/internal/users/999999", "peer-secret", "").expect(t, 404, "User not found")
	c.do("GET", "/internal/users/x", "peer-secret", "").expect(t, 400, "Invalid user id: x")
	c.do("GET", "/internal/users/"+uid, "", "").expect(t, 401, "Authentication required")
	c.do("GET", "/internal/users/"+uid, "wrong", "").expect(t, 401, "Authentication required")
	c.do("GET", "/internal/users/"+uid, c.adminToken(), "").expect(t, 401, "Authentication required")
}
