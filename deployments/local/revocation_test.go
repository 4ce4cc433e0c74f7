package local

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// revocationGoal is how soon a revoked token must stop working on every service (the goal is 1 s;
// the bound the test holds is the 5 s).
const revocationGoal = 5 * time.Second

// checkRevocation: an admin's token loses its rights on every service, and on an open WebSocket,
// within seconds of being demoted, suspended or deleted; a deleted user's token creates nothing;
// a user who owns VMs is deleted only with them.
func checkRevocation(t *testing.T, base, adminPassword string) {
	c := apiClient{t: t, base: base}
	admin := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "")
	adminToken := admin.body["token"].(string)

	reg := c.expect(c.call("POST", "/api/auth/register", "", credentials{"grace", "hopper-1906"}), 201, "")
	id := fmt.Sprint(reg.body["user"].(map[string]any)["id"])
	c.expect(c.call("PUT", "/api/admin/users/"+id+"/approve", adminToken, map[string]bool{"approved": true}), 200, "")
	c.expect(c.call("PUT", "/api/admin/users/"+id+"/role", adminToken, map[string]string{"role": "admin"}), 200, "")
	login := func() string {
		return c.expect(c.call("POST", "/api/auth/login", "", credentials{"grace", "hopper-1906"}), 200, "").body["token"].(string)
	}

	// Every service's admin route, through the gateway.
	adminRoutes := []string{"/api/vms?all=true", "/api/admin/users", "/api/vms/isos"}
	refusedEverywhere := func(what, token string, routes []string, started time.Time) {
		t.Helper()
		for _, route := range routes {
			for {
				r := c.call("GET", route, token, nil)
				if r.status == 401 {
					break
				}
				if time.Since(started) > revocationGoal {
					t.Fatalf("%s: GET %s still answers %d %s after %s", what, route, r.status, r.raw, revocationGoal)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		t.Logf("%s: refused on every route %s after the change", what, time.Since(started).Round(time.Millisecond))
	}

	// Demoted: the admin token stops working, and its socket is closed with 4403.
	token := login()
	for _, route := range adminRoutes {
		c.expect(c.call("GET", route, token, nil), 200, "")
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws/vm-status?token="+token, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	started := time.Now()
	c.expect(c.call("PUT", "/api/admin/users/"+id+"/role", adminToken, map[string]string{"role": "user"}), 200, "")
	refusedEverywhere("demoted admin", token, adminRoutes, started)
	select {
	case err := <-closed:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4403 {
			t.Fatalf("the demoted admin's socket ended with %v, want close 4403", err)
		}
		t.Logf("demoted admin: socket closed with 4403 %s after the change", time.Since(started).Round(time.Millisecond))
	case <-time.After(revocationGoal):
		t.Fatalf("the demoted admin's socket is still open %s after the change", revocationGoal)
	}

	// Suspended: even the user's own routes refuse the token.
	token = login()
	c.expect(c.call("GET", "/api/vms", token, nil), 200, "")
	started = time.Now()
	c.expect(c.call("PUT", "/api/admin/users/"+id+"/approve", adminToken, map[string]bool{"approved": false}), 200, "")
	refusedEverywhere("suspended user", token, []string{"/api/vms", "/api/auth/me", "/api/vms/isos"}, started)

	// Owns a VM: not deleted unless the VMs go too; then the token creates nothing and the VM goes.
	c.expect(c.call("PUT", "/api/admin/users/"+id+"/approve", adminToken, map[string]bool{"approved": true}), 200, "")
	token = login()
	vm := c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "grace-vm", "cpu": 1, "memory": 64, "os_type": "other"}), 201, "")
	uuid := vm.body["uuid"].(string)
	c.expect(c.call("DELETE", "/api/admin/users/"+id, adminToken, nil), 409,
		"User owns 1 VMs; delete them first or pass delete_vms=true to delete them with the user")
	started = time.Now()
	c.expect(c.call("DELETE", "/api/admin/users/"+id+"?delete_vms=true", adminToken, nil), 200, "")
	refusedEverywhere("deleted user", token, []string{"/api/vms", "/api/auth/me", "/api/vms/isos"}, started)
	c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "after deletion", "cpu": 1, "memory": 64, "os_type": "other"}), 401, "")
	for c.call("GET", "/api/vms/"+uuid, adminToken, nil).status != 404 {
		if time.Since(started) > 30*time.Second {
			t.Fatalf("the deleted user's VM %s still exists", uuid)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("deleted user: VM removed %s after the deletion", time.Since(started).Round(time.Millisecond))
}
