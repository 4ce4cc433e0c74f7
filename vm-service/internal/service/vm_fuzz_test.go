package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"limen/vm-service/internal/service"
)

// The fuzz targets below drive vm-service as newStack builds it (the package's Postgres and libvirtd)
// with fuzzed create bodies, action bodies and {ref} path parameters. A create that passed would
// define a real domain and disk, and an action would run a real guest: neither is what fuzzing is
// for, nor fast. So the fixture makes every change impossible while every rule is still checked,
// in the order the service checks them:
//
//   - each user (1 and 2) holds one VM and the VM quota is 1: a create that decodes and validates
//     (name, cpu, memory, os_type), and whose name is free, is refused by the quota (403) before the
//     hypervisor is asked; a taken name is refused (409) before that;
//   - both VMs are busy (a task claimed by another replica, which never stops heartbeating): every
//     action and delete that decodes, validates and finds a visible VM is refused (409) when it
//     tries to claim it, before the hypervisor is asked.
//
// So whatever the input: no 5xx, no panic, no change of the database (vms, the outbox's events, the
// installation; the replicas' heartbeats and the relay's published_at are the service's own
// bookkeeping) and no change of the domains libvirt holds; only reads may answer 2xx.

// fzStack is newStack with the fixture above. The resync runs at start only: a periodic one changes
// nothing here either, but would do so while an input is being judged.
func fzStack(f *testing.F) (*stack, map[string]string) {
	f.Helper()
	s := newStack(f, func(cfg *service.Config) {
		cfg.ResyncInterval = time.Hour
		cfg.TaskHeartbeat = time.Minute // a lease of minutes: a busy machine never lets the claims lapse
	})
	alice := s.create(s.token(1, "user"), "taken")
	bob := s.create(s.token(2, "user"), "bobs")
	s.quota.limit(1, 100, 1<<20)
	// Claimed by another replica whose heartbeat never ages: a claim in this process's own name would
	// be dead, since this process does not run it (app.Tasks).
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO replicas (id, host, heartbeat_at)
		VALUES ('00000000-0000-4000-8000-00000000f022', 'fuzz', 'infinity')`); err != nil {
		f.Fatalf("registering the claiming replica: %v", err)
	}
	tag, err := s.Pool.Exec(context.Background(), `UPDATE vms SET task = 'start', task_since = now(),
		task_owner = '00000000-0000-4000-8000-00000000f022'`)
	if err != nil || tag.RowsAffected() != 2 {
		f.Fatalf("marking the VMs busy: %v", err)
	}
	return s, map[string]string{"alice_uuid": alice.UUID, "alice_id": fmt.Sprint(alice.ID), "bob_uuid": bob.UUID}
}

// fzState is a digest of vm-service's tables and of the domains libvirt has.
func (s *stack) fzState(t testing.TB) string {
	t.Helper()
	var db string
	err := s.Pool.QueryRow(context.Background(), `SELECT concat_ws('/',
		(SELECT md5(coalesce(string_agg(v::text, '|' ORDER BY v.id), '')) FROM vms v),
		(SELECT md5(coalesce(string_agg(concat_ws(',', o.id, o.topic, o.key, encode(o.payload, 'hex'), o.traceparent, o.created_at), '|' ORDER BY o.id), '')) FROM outbox o),
		(SELECT md5(coalesce(string_agg(i::text, '|'), '')) FROM installation i))`).Scan(&db)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	domains, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(domains))
	for _, d := range domains {
		names = append(names, d.Name)
	}
	return db + "/" + strings.Join(names, ",")
}

// fzCall sends one request with target written on the request line as given.
func (s *stack) fzCall(t testing.TB, method, target, token, body string) (int, map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	req.RequestURI = target
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.svc.App().Test(req, 30_000)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// fzCheck is the common rule: below 500, an error carries the contract's body, nothing changed.
func fzCheck(t *testing.T, what string, status int, body map[string]any, raw, before, after string) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("%s: %d %s", what, status, raw)
	}
	if status >= 400 && (body["code"] != float64(status) || body["message"] == "") {
		t.Fatalf("%s: %d without the contract's error body: %s", what, status, raw)
	}
	if after != before {
		t.Fatalf("%s: %d %s, and the database or the hypervisor changed", what, status, raw)
	}
}

// fzNotOnRequestLine is what a request target cannot contain: it would end the target or the line.
func fzNotOnRequestLine(r rune) bool { return r <= ' ' || r == 0x7f }

// FuzzCreateVM: POST /api/vms as user 1 or 2 (mode bit 1). Mode bit 0 picks the body: the JSON of
// the fuzzed fields, or the name string alone as the raw body (other JSON types, broken JSON). No
// create can pass (see above): every answer is a 4xx and nothing changes. Seeds:
// testdata/fuzz/FuzzCreateVM.
func FuzzCreateVM(f *testing.F) {
	s, _ := fzStack(f)
	f.Fuzz(func(t *testing.T, mode uint8, name string, cpu, memory int, osType string, start bool) {
		body := name
		if mode&1 == 0 {
			b, _ := json.Marshal(map[string]any{"name": name, "cpu": cpu, "memory": memory, "os_type": osType, "start": start})
			body = string(b)
		}
		user := int64(1 + mode>>1&1)
		before := s.fzState(t)
		status, out, raw := s.fzCall(t, "POST", "/api/vms", s.Keys.Token(t, user, "user"), body)
		after := s.fzState(t)
		what := fmt.Sprintf("user %d POST /api/vms %s", user, body)
		fzCheck(t, what, status, out, raw, before, after)
		if status < 400 {
			t.Fatalf("%s: %d %s, but no create can pass", what, status, raw)
		}
	})
}

// FuzzVMRef: the {ref} of every VM route (GET, DELETE, POST .../action with a fuzzed body, the
// peers' /internal/vms/{ref} and /internal/owners/{id}/usage) and the list's query, raw on the
// request line, as user 1, user 2 or an admin (op / 8). The seeds name the fixture's VMs
// ($alice_uuid, $alice_id, $bob_uuid in ref are replaced by them). Only reads may answer 2xx;
// nothing changes. Seeds: testdata/fuzz/FuzzVMRef.
func FuzzVMRef(f *testing.F) {
	s, refs := fzStack(f)
	f.Fuzz(func(t *testing.T, op uint8, ref, body string) {
		for k, v := range refs {
			ref = strings.ReplaceAll(ref, "$"+k, v)
		}
		if strings.ContainsFunc(ref, fzNotOnRequestLine) {
			return // no request line carries it
		}
		var token string
		switch op / 8 % 3 {
		case 0:
			token = s.Keys.Token(t, 1, "user")
		case 1:
			token = s.Keys.Token(t, 2, "user")
		default:
			token = s.Keys.Token(t, 9, "admin")
		}
		var method, target string
		switch op % 8 {
		case 0:
			method, target, body = "GET", "/api/vms/"+ref, ""
		case 1:
			method, target, body = "DELETE", "/api/vms/"+ref, ""
		case 2, 3:
			method, target = "POST", "/api/vms/"+ref+"/action"
		case 4:
			method, target, body, token = "GET", "/internal/vms/"+ref, "", "peer-secret"
		case 5:
			method, target, body, token = "GET", "/internal/owners/"+ref+"/usage", "", "peer-secret"
		default:
			method, target, body = "GET", "/api/vms?"+ref, ""
		}
		before := s.fzState(t)
		status, out, raw := s.fzCall(t, method, target, token, body)
		after := s.fzState(t)
		what := fmt.Sprintf("%s %s %s (op %d)", method, target, body, op)
		fzCheck(t, what, status, out, raw, before, after)
		if status < 400 && method != "GET" {
			t.Fatalf("%s: %d %s, but every VM is busy", what, status, raw)
		}
	})
}
