package http_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"limen/libs/authn"
)

// listCalls is how many list calls vm-service has answered so far, per user.
func (s *vmService) listCalls() map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]int{}
	for user, n := range s.lists {
		out[user] = n
	}
	return out
}

// put stores vm in place of the VM of its uuid, as vm-service would after a change.
func (s *vmService) put(vm map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, old := range s.vms {
		if old["uuid"] == vm["uuid"] {
			s.vms[i] = vm
		}
	}
}

func readRaw(t *testing.T, conn *websocket.Conn) []byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return raw
}

// normalized is v as JSON with the key order and number form encoding/json gives a decoded value.
func normalized(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(decoded)
	return string(out)
}

// One deletion seen by many sockets of one user and by an admin reaches each as vm_delete followed by
// the right vm_list, and vm-service is not asked for a single list: each socket's list is built from
// the one it got at connect time and the events it was sent since. (Each socket used to fetch its list
// again: N sockets, N calls of GET /api/vms per deletion, every admin socket fetching every VM.)
func TestVMStatus_OneDeletion_ReachesEverySocketWithoutAskingVMService(t *testing.T) {
	const sockets = 50
	g := startLiveGateway(t, liveOptions{maxPerUser: sockets})
	userToken := g.issuer.Token(t, userA, authn.RoleUser)
	var users []*websocket.Conn
	for range sockets {
		conn, _ := g.connect(t, userToken)
		users = append(users, conn)
	}
	adm, _ := g.connect(t, g.issuer.Token(t, adminID, authn.RoleAdmin)+askAll)
	other, _ := g.connect(t, g.issuer.Token(t, userB, authn.RoleUser))
	connects := g.vms.listCalls()
	if connects[userA] != sockets || connects[adminID] != 1 || connects[userB] != 1 {
		t.Fatalf("list calls at connect: %v", connects)
	}

	// An update first: the list that follows the deletion must show it.
	paused := vmJSON(2, vmA2, userA, "Paused")
	g.vms.put(paused)
	g.update(t, vmA2, userA, 4, "Paused")
	for _, conn := range append(users[:len(users):len(users)], adm) {
		if m := read(t, conn); m.Type != "vm_update" || m.VM["uuid"] != vmA2 || m.VM["status"] != "Paused" {
			t.Fatalf("%+v", m)
		}
	}

	g.vms.remove(vmA)
	start := time.Now()
	g.produce(t, "limen.vm.events", "limen.vm.deleted", vmA, userA, 9, vmJSON(1, vmA, userA, "Stopped"))
	check := func(conn *websocket.Conn, want []map[string]any) {
		t.Helper()
		del := read(t, conn)
		if del.Type != "vm_delete" || del.Seq != 9 || del.VM["uuid"] != vmA || del.VM["id"] != float64(1) || len(del.VM) != 2 {
			t.Fatalf("%+v", del)
		}
		raw := readRaw(t, conn)
		// The list message's shape, byte for byte up to the VMs, is the one the first list has.
		if !bytes.HasPrefix(raw, []byte(`{"type":"vm_list","vms":[`)) || !bytes.HasSuffix(raw, []byte(`]}`)) {
			t.Fatalf("list message %s", raw)
		}
		var list struct {
			Type string           `json:"type"`
			VMs  []map[string]any `json:"vms"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		// Each VM exactly as GET /api/vms shows it (every field), in vm-service's order.
		if got, want := normalized(t, list.VMs), normalized(t, want); got != want {
			t.Fatalf("list after the deletion\n got %s\nwant %s", got, want)
		}
	}
	for _, conn := range users {
		check(conn, []map[string]any{paused})
	}
	check(adm, []map[string]any{paused, vmJSON(3, vmB, userB, "Stopped")})
	elapsed := time.Since(start)
	readNothing(t, other, 200*time.Millisecond) // not user B's VM

	after := g.vms.listCalls()
	for user, n := range after {
		if n != connects[user] {
			t.Errorf("user %d: %d list calls after the connects, want 0", user, n-connects[user])
		}
	}
	t.Logf("one deletion reached %d sockets of one user and an admin socket in %s; list calls after the connects: %d",
		sockets, elapsed, after[userA]-connects[userA]+after[adminID]-connects[adminID])
}
