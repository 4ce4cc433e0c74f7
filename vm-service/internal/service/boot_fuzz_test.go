package service_test

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzBootOrder: the {ref} and body of GET and POST .../boot-order and POST .../finalize-install, and
// the peers' ?ids= of /internal/owners/usage and {id} of /internal/owners/{id}/vms (ref), raw on the
// request line, as user 1, user 2 or an admin (op / 8). The fixture is FuzzVMRef's (every VM busy),
// so a change that passes its checks is refused by the VM's claim before the hypervisor or
// media-service is asked (none is configured here: asked, it would be a 503). Only reads may answer
// 2xx; nothing changes. Seeds: testdata/fuzz/FuzzBootOrder.
func FuzzBootOrder(f *testing.F) {
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
			method, target, body = "GET", "/api/vms/"+ref+"/boot-order", ""
		case 1, 2:
			method, target = "POST", "/api/vms/"+ref+"/boot-order"
		case 3, 4:
			method, target = "POST", "/api/vms/"+ref+"/finalize-install"
		case 5:
			method, target, body, token = "GET", "/internal/owners/usage?ids="+ref, "", "peer-secret"
		default:
			method, target, body, token = "GET", "/internal/owners/"+ref+"/vms", "", "peer-secret"
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
