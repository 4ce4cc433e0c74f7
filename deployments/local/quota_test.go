package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The quota-service settings the stack runs with: reservations lost with a caller (a create refused
// while quota-service was frozen, its request answered later) expire soon, and the periodic check runs
// often, so the test sees usage repaired within seconds.
const (
	quotaReservationTTL = 15 * time.Second
	quotaReconcileEvery = time.Second
)

// quotaUsage is the seed's QuotaUsage.
type quotaUsage struct {
	Quota struct {
		ID, UserID                int64
		MaxVMs, MaxCPU, MaxMemory int
	}
	Usage struct{ VMs, CPU, Memory int }
}

// checkQuota holds vm-service and quota-service to the quota rules, through the gateway: concurrent
// creates and resizes never pass the limits, a delete frees usage, with quota-service frozen growth
// is 503 while a delete still works, usage right again once it is back, and a deleted user's quota
// goes with them. The user is gone at the end, so later checks see the users they expect.
func checkQuota(t *testing.T, base, adminPassword, dataDir string) {
	c := apiClient{t: t, base: base}
	adminToken := c.expect(c.call("POST", "/api/auth/login", "", credentials{"admin", adminPassword}), 200, "").body["token"].(string)
	reg := c.expect(c.call("POST", "/api/auth/register", "", credentials{"hedy", "lamarr-1914"}), 201, "")
	id := int64(reg.body["user"].(map[string]any)["id"].(float64))
	c.expect(c.call("PUT", fmt.Sprintf("/api/admin/users/%d/approve", id), adminToken, map[string]bool{"approved": true}), 200, "")
	token := c.expect(c.call("POST", "/api/auth/login", "", credentials{"hedy", "lamarr-1914"}), 200, "").body["token"].(string)

	// The seed's QuotaUsage, exactly: these keys and no others.
	set := c.expect(c.call("PUT", "/api/quota", adminToken, map[string]any{"user_id": id, "max_vms": 3, "max_cpu": 5, "max_memory": 320}), 200, "")
	if keys(set.body) != "quota,usage" || keys(set.body["quota"]) != "id,max_cpu,max_memory,max_vms,user_id" ||
		keys(set.body["usage"]) != "cpu,memory,vms" {
		t.Fatalf("QuotaUsage shape: %s", set.raw)
	}
	usage := func() quotaUsage {
		t.Helper()
		r := c.expect(c.call("GET", "/api/quota", token, nil), 200, "")
		var q quotaUsage
		if err := json.Unmarshal([]byte(r.raw), &q); err != nil {
			t.Fatalf("quota: %s", r.raw)
		}
		return q
	}
	// held is what the user's VMs take, as vm-service lists them.
	held := func() (vms, cpu, memory int, uuids []string) {
		t.Helper()
		var list []struct {
			UUID   string `json:"uuid"`
			CPU    int    `json:"cpu"`
			Memory int    `json:"memory"`
		}
		if err := json.Unmarshal([]byte(c.expect(c.call("GET", "/api/vms", token, nil), 200, "").raw), &list); err != nil {
			t.Fatal(err)
		}
		for _, vm := range list {
			cpu, memory, uuids = cpu+vm.CPU, memory+vm.Memory, append(uuids, vm.UUID)
		}
		return len(list), cpu, memory, uuids
	}
	// settled waits until quota-service's usage is what the VMs take.
	settled := func(what string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			vms, cpu, memory, _ := held()
			q := usage()
			if q.Usage.VMs == vms && q.Usage.CPU == cpu && q.Usage.Memory == memory {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: usage %+v, the VMs take %d VMs, %d vCPUs, %d MiB", what, q.Usage, vms, cpu, memory)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// 50 concurrent creates with max_vms 3: exactly 3 admitted.
	statuses := parallel(50, func(i int) (int, string) {
		return send(base, "POST", "/api/vms", token, map[string]any{"name": fmt.Sprintf("q%d", i), "cpu": 1, "memory": 64, "os_type": "other"})
	})
	if n := count(statuses, http.StatusCreated); n != 3 || count(statuses, http.StatusForbidden) != 47 {
		t.Fatalf("50 creates with max_vms 3: %d admitted; answers %v", n, statuses)
	}
	if q := usage(); q.Usage.VMs != 3 || q.Usage.CPU != 3 || q.Usage.Memory != 192 {
		t.Fatalf("usage after the creates: %+v", q.Usage)
	}
	_, _, _, uuids := held()

	// 40 concurrent updates raising cpu and memory against max_cpu 5, max_memory 320: usage is never
	// past the limits, neither as quota-service counts it nor as the VMs are.
	stop := make(chan struct{})
	var over []string
	var watching sync.WaitGroup
	watching.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, raw := send(base, "GET", "/api/quota", token, nil)
			var q quotaUsage
			if status != http.StatusOK || json.Unmarshal([]byte(raw), &q) != nil || q.Usage.CPU > 5 || q.Usage.Memory > 320 {
				over = append(over, fmt.Sprintf("%d %s", status, raw))
			}
		}
	})
	statuses = parallel(40, func(i int) (int, string) {
		return send(base, "POST", "/api/vms/"+uuids[i%3]+"/action", token, map[string]any{"action": "update", "cpu": 1 + i%3, "memory": 64 * (1 + i%3)})
	})
	close(stop)
	watching.Wait()
	if len(over) > 0 {
		t.Fatalf("usage past the limits during the updates: %v", over)
	}
	if _, cpu, memory, _ := held(); cpu > 5 || memory > 320 {
		t.Fatalf("the VMs take %d vCPUs, %d MiB after the updates (limits 5, 320); answers %v", cpu, memory, statuses)
	}
	if count(statuses, http.StatusOK) == 0 {
		t.Fatalf("40 updates: none admitted: %v", statuses)
	}
	settled("after the updates", 10*time.Second)

	// A delete frees usage.
	c.expect(c.call("DELETE", "/api/vms/"+uuids[0], token, nil), 200, "VM deleted")
	settled("after a delete", 10*time.Second)

	// quota-service frozen: growth is 503 with nothing made, a delete still works; once it is back,
	// usage is right again (the release that could not reach it comes from the VM's deletion event).
	quota := servicePID(t, dataDir, "quota-service")
	if err := syscall.Kill(quota, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(quota, syscall.SIGCONT)
		}
	}
	defer thaw()
	c.expect(c.call("POST", "/api/vms", token, map[string]any{"name": "frozen", "cpu": 1, "memory": 64, "os_type": "other"}), 503, "Quota service unavailable")
	c.expect(c.call("DELETE", "/api/vms/"+uuids[1], token, nil), 200, "VM deleted")
	if vms, _, _, _ := held(); vms != 1 {
		t.Fatalf("%d VMs with quota-service frozen, want 1", vms)
	}
	thaw()
	settled("once quota-service is back", quotaReservationTTL+10*quotaReconcileEvery+10*time.Second)

	// The user goes, with the last VM; so does their quota (404 once quota-service read the deletion).
	c.expect(c.call("DELETE", fmt.Sprintf("/api/admin/users/%d?delete_vms=true", id), adminToken, nil), 200, "")
	deadline := time.Now().Add(10 * time.Second)
	for c.call("GET", fmt.Sprintf("/api/quota?user_id=%d", id), adminToken, nil).status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatal("a deleted user's quota is still there")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// send makes one request through the gateway (safe from any goroutine) and answers its status and body.
func send(base, method, path, token string, body any) (int, string) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, base+path, bytes.NewReader(b))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// parallel runs n calls at once and answers their statuses.
func parallel(n int, call func(i int) (int, string)) []int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			statuses[i], _ = call(i)
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

func count(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// keys lists an object's keys, sorted and joined by commas.
func keys(v any) string {
	m, _ := v.(map[string]any)
	return strings.Join(slices.Sorted(maps.Keys(m)), ",")
}

// servicePID finds the service (its binary's name) run.sh started from this stack's data directory.
func servicePID(t *testing.T, dataDir, service string) int {
	t.Helper()
	bin := filepath.Join(dataDir, "bin", service)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == bin {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	t.Fatalf("no process runs %s", bin)
	return 0
}
