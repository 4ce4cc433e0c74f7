package http_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"limen/auth-service/internal/service"
)

// revocationGoal bounds how long a revoked token may keep working (the goal is 1 s).
const revocationGoal = 5 * time.Second

// waitRevoked waits until token is refused, through the outbox, the broker and the follower.
func (c client) waitRevoked(token string) time.Duration {
	c.t.Helper()
	started := time.Now()
	for {
		r := c.do("GET", "/api/auth/me", token, "")
		if r.status == http.StatusUnauthorized {
			r.expect(c.t, http.StatusUnauthorized, "Authentication required")
			return time.Since(started)
		}
		if time.Since(started) > revocationGoal {
			c.t.Fatalf("token still accepted %s after its revocation", revocationGoal)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRevocation_RoleApprovalLogoutAndDeletionRevokeTokens(t *testing.T) {
	c := newService(t, nil)
	admin := c.adminToken()
	id, token := c.registerApproved("lin", "password1")
	uid := ftoa(id)

	c.do("PUT", "/api/admin/users/"+uid+"/role", admin, `{"role":"admin"}`).expect(t, 200, "")
	t.Logf("role change: token refused after %s", c.waitRevoked(token))

	login := c.login("lin", "password1")
	token = login.body["token"].(string)
	c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, `{"approved":false}`).expect(t, 200, "")
	t.Logf("suspension: token refused after %s", c.waitRevoked(token))

	c.do("PUT", "/api/admin/users/"+uid+"/approve", admin, `{"approved":true}`).expect(t, 200, "")
	login = c.login("lin", "password1")
	token, other := login.body["token"].(string), c.login("lin", "password1").body["token"].(string)
	c.do("POST", "/api/auth/logout", token, `{"refresh_token":"`+login.body["refresh_token"].(string)+`"}`).expect(t, 204, "")
	t.Logf("logout: that session's token refused after %s", c.waitRevoked(token))
	c.do("GET", "/api/auth/me", other, "").expect(t, 200, "") // another session goes on

	c.do("DELETE", "/api/admin/users/"+uid, admin, "").expect(t, 200, "")
	t.Logf("deletion: token refused after %s", c.waitRevoked(other))
	c.do("GET", "/api/auth/me", admin, "").expect(t, 200, "")
}

// A user who owns VMs is deleted only with them; when vm-service cannot say, nobody is deleted.
func TestDeleteUser_OwningVMs(t *testing.T) {
	var vms, down atomic.Int64
	vmService := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer peer-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if down.Load() == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"vms":%d,"cpu":0,"memory":0}`, vms.Load())
	}))
	defer vmService.Close()
	c := newService(t, func(cfg *service.Config) { cfg.VMServiceURL, cfg.InternalToken = vmService.URL, "peer-secret" })
	admin := c.adminToken()
	id, _ := c.registerApproved("kay", "password1")
	uid := ftoa(id)

	vms.Store(2)
	c.do("DELETE", "/api/admin/users/"+uid, admin, "").expect(t, 409,
		"User owns 2 VMs; delete them first or pass delete_vms=true to delete them with the user")
	down.Store(1)
	c.do("DELETE", "/api/admin/users/"+uid, admin, "").expect(t, 503, "VM service unavailable")
	c.do("GET", "/api/admin/users/"+uid, admin, "").expect(t, 200, "")
	c.do("DELETE", "/api/admin/users/"+uid+"?delete_vms=true", admin, "").expect(t, 200, "")
	c.do("GET", "/api/admin/users/"+uid, admin, "").expect(t, 404, "User not found")
}
