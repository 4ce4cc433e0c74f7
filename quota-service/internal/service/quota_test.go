package service_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The seed frontend's QuotaUsage, exactly: these keys and no others, with the configured defaults
// for a user nobody set limits for.
func TestGetQuota_IsTheSeedsQuotaUsage(t *testing.T) {
	s := newStack(t)
	a := s.call("GET", "/api/quota", s.token(7, "user"), "")
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var got map[string]map[string]json.Number
	a.decode(t, &got)
	keys := func(m map[string]json.Number) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	if len(got) != 2 || !reflect.DeepEqual(keys(got["quota"]), []string{"id", "max_cpu", "max_memory", "max_vms", "user_id"}) ||
		!reflect.DeepEqual(keys(got["usage"]), []string{"cpu", "memory", "vms"}) {
		t.Fatalf("shape: %s", a.body)
	}
	q := s.quota(7)
	if q.Quota.ID < 1 || q.Quota.UserID != 7 || q.Quota.MaxVMs != 10 || q.Quota.MaxCPU != 16 || q.Quota.MaxMemory != 32768 || q.Usage != (usage{}) {
		t.Errorf("defaults: %+v", q)
	}
	if again := s.quota(7); again.Quota.ID != q.Quota.ID {
		t.Errorf("the quota's id changed: %d, then %d", q.Quota.ID, again.Quota.ID)
	}

	s.createVM(7, 2, 2048)
	if q := s.quota(7); q.Usage != (usage{VMs: 1, CPU: 2, Memory: 2048}) {
		t.Errorf("usage after a VM: %+v", q.Usage)
	}
}

func TestGetQuota_WhoMayAskForWhom(t *testing.T) {
	s := newStack(t)
	s.knowUser(8, true)
	for _, c := range []struct {
		name, path, token string
		status            int
		message           string
	}{
		{"no token", "/api/quota", "", http.StatusUnauthorized, "Authentication required"},
		{"a bad token", "/api/quota", "not-a-token", http.StatusUnauthorized, "Authentication required"},
		{"a user for another", "/api/quota?user_id=8", s.token(7, "user"), http.StatusForbidden, "Admin access required"},
		{"a user for themselves", "/api/quota?user_id=7", s.token(7, "user"), http.StatusOK, ""},
		{"an admin for a user", "/api/quota?user_id=8", s.token(1, "admin"), http.StatusOK, ""},
		{"an admin for nobody", "/api/quota?user_id=999", s.token(1, "admin"), http.StatusNotFound, "User not found"},
		{"a bad id", "/api/quota?user_id=abc", s.token(1, "admin"), http.StatusBadRequest, "Query parameter 'user_id' must be a positive integer"},
		{"id 0", "/api/quota?user_id=0", s.token(1, "admin"), http.StatusBadRequest, "Query parameter 'user_id' must be a positive integer"},
		{"a negative id", "/api/quota?user_id=-4", s.token(7, "user"), http.StatusBadRequest, "Query parameter 'user_id' must be a positive integer"},
	} {
		a := s.call("GET", c.path, c.token, "")
		if a.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, a.status, a.body, c.status)
			continue
		}
		if c.message != "" && a.message(t) != c.message {
			t.Errorf("%s: %s, want %q", c.name, a.body, c.message)
		}
	}
	var q quotaUsage
	s.call("GET", "/api/quota?user_id=8", s.token(1, "admin"), "").decode(t, &q)
	if q.Quota.UserID != 8 || q.Quota.MaxVMs != 10 {
		t.Errorf("admin's view of user 8: %+v", q)
	}
	var n int
	if err := s.Pool.QueryRow(s.Ctx, `SELECT count(*) FROM quotas WHERE user_id = 999`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a quota was made for an unknown user (%d, %v)", n, err)
	}
}

func TestSetQuota_ChangesOnlyWhatItNames(t *testing.T) {
	s := newStack(t)
	q := s.setLimits(5, `"max_vms":3`)
	if q.Quota.MaxVMs != 3 || q.Quota.MaxCPU != 16 || q.Quota.MaxMemory != 32768 || q.Quota.UserID != 5 {
		t.Errorf("after max_vms: %+v", q.Quota)
	}
	q = s.setLimits(5, `"max_cpu":64000,"max_memory":64`)
	if q.Quota.MaxVMs != 3 || q.Quota.MaxCPU != 64000 || q.Quota.MaxMemory != 64 {
		t.Errorf("after cpu and memory: %+v", q.Quota)
	}
	if got := s.quota(5); got.Quota != q.Quota {
		t.Errorf("GET %+v, PUT answered %+v", got.Quota, q.Quota)
	}
	q = s.setLimits(5, `"max_vms":0,"max_cpu":1,"max_memory":262144000`)
	if q.Quota.MaxVMs != 0 || q.Quota.MaxCPU != 1 || q.Quota.MaxMemory != 262144000 {
		t.Errorf("at the bounds: %+v", q.Quota)
	}
}

func TestSetQuota_BadInputChangesNothing(t *testing.T) {
	s := newStack(t)
	before := s.setLimits(5, `"max_vms":4,"max_cpu":8,"max_memory":4096`)
	admin := s.token(1, "admin")
	for _, c := range []struct {
		name, contentType, body string
		token                   string
		status                  int
		message                 string
	}{
		{"a user", "", `{"user_id":5,"max_vms":100}`, s.token(5, "user"), http.StatusForbidden, "Admin access required"},
		{"no token", "", `{"user_id":5,"max_vms":100}`, "", http.StatusUnauthorized, "Authentication required"},
		{"negative vms", "", `{"user_id":5,"max_vms":-1}`, admin, http.StatusBadRequest, "Field 'max_vms' must be between 0 and 10000"},
		{"zero cpu", "", `{"user_id":5,"max_cpu":0}`, admin, http.StatusBadRequest, "Field 'max_cpu' must be between 1 and 64000"},
		{"memory below a VM", "", `{"user_id":5,"max_memory":63}`, admin, http.StatusBadRequest, "Field 'max_memory' must be between 64 and 262144000"},
		{"absurd vms", "", `{"user_id":5,"max_vms":10001}`, admin, http.StatusBadRequest, "Field 'max_vms' must be between 0 and 10000"},
		{"absurd cpu", "", `{"user_id":5,"max_cpu":64001}`, admin, http.StatusBadRequest, "Field 'max_cpu' must be between 1 and 64000"},
		{"absurd memory", "", `{"user_id":5,"max_memory":1e300}`, admin, http.StatusBadRequest, "Field 'max_memory' must be between 64 and 262144000"},
		{"beyond int64", "", `{"user_id":5,"max_cpu":99999999999999999999}`, admin, http.StatusBadRequest, "Field 'max_cpu' must be between 1 and 64000"},
		{"a fraction", "", `{"user_id":5,"max_cpu":1.5}`, admin, http.StatusBadRequest, "Field 'max_cpu' must be an integer"},
		{"a string", "", `{"user_id":5,"max_vms":"5"}`, admin, http.StatusBadRequest, "Invalid value for field 'max_vms': expected number"},
		{"a boolean", "", `{"user_id":5,"max_memory":true}`, admin, http.StatusBadRequest, "Invalid value for field 'max_memory': expected number"},
		{"no user", "", `{"max_vms":5}`, admin, http.StatusBadRequest, "Field 'user_id' is required"},
		{"user null", "", `{"user_id":null,"max_vms":5}`, admin, http.StatusBadRequest, "Field 'user_id' is required"},
		{"user 0", "", `{"user_id":0,"max_vms":5}`, admin, http.StatusBadRequest, "Field 'user_id' must be at least 1"},
		{"user a fraction", "", `{"user_id":5.5,"max_vms":5}`, admin, http.StatusBadRequest, "Field 'user_id' must be an integer"},
		{"user a string", "", `{"user_id":"5","max_vms":5}`, admin, http.StatusBadRequest, "Invalid value for field 'user_id': expected number"},
		{"no limit", "", `{"user_id":5}`, admin, http.StatusBadRequest, "At least one of max_vms, max_cpu, max_memory is required"},
		{"malformed JSON", "", `{"user_id":5,`, admin, http.StatusBadRequest, "Invalid JSON body"},
		{"an array", "", `[{"user_id":5,"max_vms":6}]`, admin, http.StatusBadRequest, "Invalid JSON body"},
		{"two values", "", `{"user_id":5,"max_vms":6} {}`, admin, http.StatusBadRequest, "Invalid JSON body"},
		{"not JSON", "text/plain", `{"user_id":5,"max_vms":6}`, admin, http.StatusUnsupportedMediaType, "Content-Type must be application/json"},
		{"too large", "", `{"user_id":5,"max_vms":6,"pad":"` + strings.Repeat("x", 1<<20) + `"}`, admin, http.StatusRequestEntityTooLarge, "Request body too large"},
		{"an unknown user", "", `{"user_id":999,"max_vms":6}`, admin, http.StatusNotFound, "User not found"},
	} {
		a := s.put(c.token, c.contentType, c.body)
		if a.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, a.status, a.body, c.status)
			continue
		}
		if msg := a.message(t); msg != c.message {
			t.Errorf("%s: %q, want %q", c.name, msg, c.message)
		}
	}
	if after := s.quota(5); after != before {
		t.Errorf("refused changes changed the quota: %+v, then %+v", before, after)
	}
	var n int
	if err := s.Pool.QueryRow(s.Ctx, `SELECT count(*) FROM quotas WHERE user_id <> 5`).Scan(&n); err != nil || n != 0 {
		t.Errorf("refused changes made %d other quotas (%v)", n, err)
	}
}

// put is PUT /api/quota with a content type of the test's choosing ("" for JSON), written by hand:
// a body over the 1 MiB limit is announced by its Content-Length but not sent, since the service
// answers it unread (a client still writing it may see a reset instead of the answer).
func (s *stack) put(token, contentType, body string) answer {
	s.t.Helper()
	if contentType == "" {
		contentType = "application/json"
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("PUT /api/quota HTTP/1.1\r\nHost: quota\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n", contentType, len(body))
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	head += "\r\n"
	if len(body) <= 1<<20 {
		head += body
	}
	if _, err := io.WriteString(conn, head); err != nil {
		s.t.Fatal(err)
	}
	req := httptest.NewRequest("PUT", "/api/quota", nil)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	return s.answerOf(req, resp)
}

// Lowering a limit below what a user holds is allowed: it shows, it blocks growth, and shrinking and
// freeing still work.
func TestSetQuota_LoweringBelowUsageBlocksGrowthOnly(t *testing.T) {
	s := newStack(t)
	vm := s.createVM(5, 4, 4096)
	s.createVM(5, 4, 4096)
	q := s.setLimits(5, `"max_vms":1,"max_cpu":2,"max_memory":1024`)
	if q.Usage != (usage{VMs: 2, CPU: 8, Memory: 8192}) || q.Quota.MaxVMs != 1 {
		t.Fatalf("after lowering: %+v", q)
	}
	if a, _ := s.reserve("grow", 5, vm, 0, 1, 0); a.status != http.StatusForbidden || a.message(t) != "Quota exceeded: cpu 9/2" {
		t.Errorf("growth past a lowered limit: %d %s", a.status, a.body)
	}
	if a, _ := s.reserve("another", 5, "7e1f0c2a-5f55-4c1e-9f45-3f7a3c7d2a10", 1, 1, 64); a.status != http.StatusForbidden || a.message(t) != "Quota exceeded: vms 3/1" {
		t.Errorf("a VM past a lowered limit: %d %s", a.status, a.body)
	}
	if a, _ := s.reserve("shrink", 5, vm, 0, -2, -2048); a.status != http.StatusCreated {
		t.Fatalf("a shrink: %d %s", a.status, a.body)
	}
	if a := s.commit("shrink", 2, 2048, 2); a.status != http.StatusOK {
		t.Fatalf("commit of a shrink: %d %s", a.status, a.body)
	}
	if q := s.quota(5); q.Usage != (usage{VMs: 2, CPU: 6, Memory: 6144}) {
		t.Errorf("after the shrink: %+v", q.Usage)
	}
	if a := s.releaseVM(vm, 5); a.status != http.StatusNoContent {
		t.Fatalf("release of a VM: %d %s", a.status, a.body)
	}
	if q := s.quota(5); q.Usage != (usage{VMs: 1, CPU: 4, Memory: 4096}) {
		t.Errorf("after a deletion: %+v", q.Usage)
	}
}

func TestListQuotas_PagedWithTotal(t *testing.T) {
	s := newStack(t)
	for id := int64(1); id <= 5; id++ {
		s.setLimits(id*10, fmt.Sprintf(`"max_vms":%d`, id))
	}
	admin := s.token(1, "admin")
	a := s.call("GET", "/api/admin/quotas?limit=2&offset=1", admin, "")
	if a.status != http.StatusOK || a.header.Get("X-Total-Count") != "5" {
		t.Fatalf("%d %v %s", a.status, a.header, a.body)
	}
	var page []quotaUsage
	a.decode(t, &page)
	if len(page) != 2 || page[0].Quota.UserID != 20 || page[1].Quota.UserID != 30 || page[1].Quota.MaxVMs != 3 {
		t.Errorf("page: %+v", page)
	}
	a = s.call("GET", "/api/admin/quotas", admin, "")
	a.decode(t, &page)
	if len(page) != 5 || a.header.Get("X-Total-Count") != "5" {
		t.Errorf("default page: %d quotas, total %s", len(page), a.header.Get("X-Total-Count"))
	}
	a = s.call("GET", "/api/admin/quotas?offset=10", admin, "")
	if a.status != http.StatusOK || string(a.body) != "[]" || a.header.Get("X-Total-Count") != "5" {
		t.Errorf("past the end: %d %s (total %s)", a.status, a.body, a.header.Get("X-Total-Count"))
	}
	for _, c := range []struct {
		path, token string
		status      int
		message     string
	}{
		{"/api/admin/quotas", s.token(10, "user"), http.StatusForbidden, "Admin access required"},
		{"/api/admin/quotas", "", http.StatusUnauthorized, "Authentication required"},
		{"/api/admin/quotas?limit=0", admin, http.StatusBadRequest, "Query parameter 'limit' must be between 1 and 200"},
		{"/api/admin/quotas?limit=201", admin, http.StatusBadRequest, "Query parameter 'limit' must be between 1 and 200"},
		{"/api/admin/quotas?limit=x", admin, http.StatusBadRequest, "Query parameter 'limit' must be a number"},
		{"/api/admin/quotas?offset=-1", admin, http.StatusBadRequest, "Query parameter 'offset' must be 0 or more"},
	} {
		a := s.call("GET", c.path, c.token, "")
		if a.status != c.status || a.message(t) != c.message {
			t.Errorf("%s: %d %s, want %d %q", c.path, a.status, a.body, c.status, c.message)
		}
	}
}
