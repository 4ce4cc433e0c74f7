package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// apiClient talks to the running stack through the gateway, as the frontend does.
type apiClient struct {
	t    *testing.T
	base string
}

type apiReply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c apiClient) call(method, path, token string, body any) apiReply {
	c.t.Helper()
	var reader io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, reader)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := apiReply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (c apiClient) expect(r apiReply, status int, message string) apiReply {
	c.t.Helper()
	if r.status != status || message != "" && r.body["message"] != message {
		c.t.Fatalf("got %d %s; want %d %q", r.status, r.raw, status, message)
	}
	return r
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// checkAuthContract walks the auth routes (docs/openapi.yaml) through the real gateway in front of the real auth-service.
func checkAuthContract(t *testing.T, base, adminPassword string) {
	c := apiClient{t: t, base: base}
	admin := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "")
	adminToken := admin.body["token"].(string)

	// Register: pending until approved; duplicates and bad input refused.
	reg := c.expect(c.call("POST", "/api/auth/register", "", credentials{"ada", "lovelace-1815"}), 201, "")
	user := reg.body["user"].(map[string]any)
	id := fmt.Sprint(user["id"])
	if user["approved"] != false || user["role"] != "user" {
		t.Fatalf("registered user: %s", reg.raw)
	}
	c.expect(c.call("POST", "/api/auth/register", "", credentials{"ada", "another-password"}), 409, "Username already exists")
	c.expect(c.call("POST", "/api/auth/register", "", credentials{"x", "lovelace-1815"}), 400, "")
	c.expect(c.call("POST", "/api/auth/register", "", map[string]any{"username": 5}), 400, "")
	c.expect(c.call("POST", "/api/auth/login", "", credentials{"ada", "lovelace-1815"}), 403, "Account pending approval")
	c.expect(c.call("POST", "/api/auth/login", "", credentials{"ada", "wrong-password"}), 401, "Invalid username or password")
	c.expect(c.call("POST", "/api/auth/login", "", credentials{"nobody", "wrong-password"}), 401, "Invalid username or password")

	// The admin approves; the user logs in, sees themself, and is refused admin routes.
	c.expect(c.call("PUT", "/api/admin/users/"+id+"/approve", adminToken, map[string]bool{"approved": true}), 200, "")
	login := c.expect(c.call("POST", "/api/auth/login", "", credentials{"ada", "lovelace-1815"}), 200, "")
	token, refresh := login.body["token"].(string), login.body["refresh_token"].(string)
	if login.body["access_token"] != token || login.body["token_type"] != "Bearer" || !strings.Contains(login.header.Get("Set-Cookie"), "refresh_token=") {
		t.Fatalf("login body: %s", login.raw)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil || claims["role"] != "user" || claims["sub"] != id {
		t.Fatalf("token claims %v (%v)", claims, err)
	}
	if me := c.expect(c.call("GET", "/api/auth/me", token, nil), 200, ""); me.body["username"] != "ada" {
		t.Fatalf("me: %s", me.raw)
	}
	c.expect(c.call("GET", "/api/admin/users", token, nil), 403, "")
	list := c.expect(c.call("GET", "/api/admin/users", adminToken, nil), 200, "")
	var users []map[string]any
	if err := json.Unmarshal([]byte(list.raw), &users); err != nil || len(users) != 2 || list.header.Get("X-Total-Count") != "2" {
		t.Fatalf("users: %s %s (%v)", list.header.Get("X-Total-Count"), list.raw, err)
	}
	for _, u := range users {
		if _, ok := u["vm_count"]; !ok {
			t.Fatalf("user without vm_count: %s", list.raw)
		}
	}

	// Tokens: no token, forged tokens and refresh tokens are all 401 with the contract body.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "1", "user_id": 1, "role": "admin", "typ": "access"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, bad := range map[string]string{"none": "", "alg none": none, "refresh token": refresh, "tampered": token[:len(token)-4] + "AAAA"} {
		r := c.call("GET", "/api/auth/me", bad, nil)
		if r.status != 401 || r.raw != `{"code":401,"message":"Authentication required"}` {
			t.Fatalf("%s: %d %s", name, r.status, r.raw)
		}
	}
	c.expect(c.call("GET", "/internal/vms/1", adminToken, nil), 404, "")

	// Refresh rotates; the client that spent a token presenting it again at once (two tabs refreshing
	// together) gets a sibling in the same login instead of being logged out (reuse by another
	// client, or later, ends the login: auth-service's own tests).
	rotated := c.expect(c.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": refresh}), 200, "")
	next := rotated.body["refresh_token"].(string)
	c.expect(c.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": refresh}), 200, "")
	c.expect(c.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": next}), 200, "")

	// Logout revokes a fresh login.
	again := c.expect(c.call("POST", "/api/auth/login", "", credentials{"ada", "lovelace-1815"}), 200, "")
	c.expect(c.call("POST", "/api/auth/logout", again.body["token"].(string), map[string]string{"refresh_token": again.body["refresh_token"].(string)}), 204, "")
	c.expect(c.call("POST", "/api/auth/refresh", "", map[string]string{"refresh_token": again.body["refresh_token"].(string)}), 401, "")

	// Admin guards: not oneself, not the last admin.
	me := c.expect(c.call("GET", "/api/auth/me", adminToken, nil), 200, "")
	c.expect(c.call("DELETE", "/api/admin/users/"+fmt.Sprint(me.body["id"]), adminToken, nil), 409, "")
	c.expect(c.call("DELETE", "/api/admin/users/"+id, adminToken, nil), 200, "")

	// Too many failures: 429 with Retry-After (5 per account by default).
	for range 5 {
		c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", "not-the-password"}), 401, "")
	}
	if r := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 429, ""); r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

// checkVMContract walks the VM routes (docs/openapi.yaml) through the gateway to vm-service on a real libvirtd.
func checkVMContract(t *testing.T, base, adminPassword string) {
	c := apiClient{t: t, base: base}
	admin := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "")
	token := admin.body["token"].(string)

	c.expect(c.call("GET", "/api/vms", "", nil), 401, "Authentication required")
	osTypes := c.expect(c.call("GET", "/api/vms/os-types", token, nil), 200, "")
	if list, _ := osTypes.body["os_types"].([]any); len(list) < 4 {
		t.Fatalf("os types: %s", osTypes.raw)
	}
	c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "x", "cpu": 0, "memory": 64, "os_type": "ubuntu-server"}), 400, "Field 'cpu' must be between 1 and 64")

	created := c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "stack vm", "cpu": 1, "memory": 64, "os_type": "ubuntu-server", "start": true}), 201, "")
	if created.body["status"] != "Running" {
		t.Fatalf("created with start: %s", created.raw)
	}
	id, uuid := fmt.Sprint(created.body["id"]), created.body["uuid"].(string)
	c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "stack vm", "cpu": 1, "memory": 64, "os_type": "ubuntu-server"}), 409, "VM name already exists")
	c.expect(c.call("POST", "/api/vms/"+id+"/action", token, map[string]any{"action": "start"}), 409, "Cannot start VM: VM is Running")
	stopped := c.expect(c.call("POST", "/api/vms/"+id+"/action", token, map[string]any{"action": "stop"}), 200, "VM stopped")
	if stopped.body["status"] != "Stopped" || stopped.body["uuid"] != uuid || stopped.body["task"] != nil {
		t.Fatalf("stop: %s", stopped.raw)
	}
	c.expect(c.call("POST", "/api/vms/"+uuid+"/action", token, map[string]any{"action": "update", "cpu": 2, "memory": 128}), 200, "VM updated")
	got := c.expect(c.call("GET", "/api/vms/"+uuid, token, nil), 200, "")
	if got.body["cpu"] != float64(2) || got.body["memory"] != float64(128) {
		t.Fatalf("after update: %s", got.raw)
	}
	deleted := c.expect(c.call("DELETE", "/api/vms/"+uuid, token, nil), 200, "VM deleted")
	if deleted.body["vm_uuid"] != uuid {
		t.Fatalf("delete: %s", deleted.raw)
	}
	c.expect(c.call("GET", "/api/vms/"+uuid, token, nil), 404, "VM not found")
}

// checkMediaContract walks the media routes (docs/openapi.yaml) through the gateway to media-service: list the library,
// attach to a running VM, read it back, eject.
func checkMediaContract(t *testing.T, base, adminPassword string) {
	c := apiClient{t: t, base: base}
	admin := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "")
	token := admin.body["token"].(string)

	list := c.expect(c.call("GET", "/api/vms/isos", token, nil), 200, "")
	isos, _ := list.body["isos"].([]any)
	if len(isos) != 1 || list.body["count"] != float64(1) {
		t.Fatalf("isos: %s", list.raw)
	}
	path := isos[0].(map[string]any)["path"].(string)

	vm := c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "media vm", "cpu": 1, "memory": 64, "os_type": "other", "start": true}), 201, "")
	uuid := vm.body["uuid"].(string)
	defer func() { c.expect(c.call("DELETE", "/api/vms/"+uuid, token, nil), 200, "VM deleted") }()

	// Right after creation, by the listed path.
	attached := c.expect(c.call("POST", "/api/vms/"+uuid+"/media", token, map[string]any{"action": "attach", "iso_path": path}), 200, "Media attached successfully")
	if attached.body["vm_uuid"] != uuid || attached.body["iso_path"] != path {
		t.Fatalf("attach: %s", attached.raw)
	}
	media := c.expect(c.call("GET", "/api/vms/"+uuid+"/media", token, nil), 200, "")
	if media.body["attached"] != true || media.body["media_path"] != path {
		t.Fatalf("media: %s", media.raw)
	}
	c.expect(c.call("POST", "/api/vms/"+uuid+"/media", token, map[string]any{"action": "attach", "iso_path": "/etc/passwd"}), 400, "ISO path must be inside the ISO library")
	c.expect(c.call("POST", "/api/vms/"+uuid+"/media", token, map[string]any{"action": "attach"}), 400, "ISO path is required for attach")
	c.expect(c.call("POST", "/api/vms/"+uuid+"/media", token, map[string]any{"action": "eject"}), 400, "Invalid action: eject. Valid actions: attach, detach")
	c.expect(c.call("POST", "/api/vms/"+uuid+"/media", token, map[string]any{"action": "detach"}), 200, "Media detached successfully")
	media = c.expect(c.call("GET", "/api/vms/"+uuid+"/media", token, nil), 200, "")
	if media.body["attached"] != false || media.body["media_path"] != "" {
		t.Fatalf("after detach: %s", media.raw)
	}
}

// checkLiveStatus follows one VM through the live status WebSocket (docs/api.md) on the real stack: the
// change goes vm-service -> outbox -> broker -> gateway -> socket, and a media change likewise.
func checkLiveStatus(t *testing.T, base, adminPassword string) {
	c := apiClient{t: t, base: base}
	admin := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "")
	token := admin.body["token"].(string)

	if _, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws/vm-status?token=forged", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("forged token: %v %v", resp, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws/vm-status?token="+token, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer ws.Close()
	next := func(want string, match func(map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			_ = ws.SetReadDeadline(deadline)
			var msg map[string]any
			if err := ws.ReadJSON(&msg); err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if msg["type"] == want && (match == nil || match(msg)) {
				return msg
			}
		}
	}
	next("vm_list", nil)

	vm := c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "live vm", "cpu": 1, "memory": 64, "os_type": "other"}), 201, "")
	uuid := vm.body["uuid"].(string)
	ofVM := func(msg map[string]any) bool {
		v, _ := msg["vm"].(map[string]any)
		return v["uuid"] == uuid
	}
	if update := next("vm_update", ofVM); update["vm"].(map[string]any)["status"] != "Stopped" || update["seq"] == nil {
		t.Fatalf("vm_update after create: %v", update)
	}
	c.expect(c.call("POST", "/api/vms/"+uuid+"/action", token, map[string]any{"action": "start"}), 200, "VM started")
	next("vm_update", func(msg map[string]any) bool { return ofVM(msg) && msg["vm"].(map[string]any)["status"] == "Running" })

	c.expect(c.call("POST", "/api/vms/"+uuid+"/media", token, map[string]any{"action": "attach", "iso_path": "stack-test.iso"}), 200, "Media attached successfully")
	media := next("media_update", func(msg map[string]any) bool { return msg["vm_uuid"] == uuid })
	if media["attached"] != true || !strings.HasSuffix(media["media_path"].(string), "/stack-test.iso") {
		t.Fatalf("media_update: %v", media)
	}

	c.expect(c.call("DELETE", "/api/vms/"+uuid, token, nil), 200, "VM deleted")
	next("vm_delete", ofVM)
	next("vm_list", nil)
}
