package service_test

import (
	"context"
	"net/http"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/contract"
)

// eject calls the internal eject route as vm-service does, presenting token.
func (s *stack) eject(vm, token string) answer {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.server+contract.InternalEjectPath(vm), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return s.do(req)
}

// vm-service's finalize-install empties a drive through the internal route: for any owner's VM, with
// the peer token only, recorded and announced as every eject (actor 0: no user asked), and 204 for an
// empty drive too.
func TestInternalEject_EmptiesAnyVMsDrive_RecordedAsTheSystems(t *testing.T) {
	s := newStack(t)
	iso := s.makeISO("installer.iso")
	running := s.defineVM(7, true, true)
	s.expect(s.call("POST", "/api/vms/"+running+"/media", 7, "user", map[string]any{"action": "attach", "iso_path": iso}), 200, "")

	for _, token := range []string{"", "wrong-secret", s.Keys.Token(t, 7, "user"), s.Keys.Token(t, 9, "admin")} {
		s.expect(s.eject(running, token), http.StatusUnauthorized, "Authentication required")
	}
	if live, config := s.cdromSource(running, 0), s.cdromSource(running, golibvirt.DomainXMLInactive); live != iso || config != iso {
		t.Fatalf("a refused eject changed the drive: live %q, persistent %q", live, config)
	}

	if a := s.expect(s.eject(running, "peer-secret"), http.StatusNoContent, ""); a.raw != "" {
		t.Fatalf("eject body: %q", a.raw)
	}
	if live, config := s.cdromSource(running, 0), s.cdromSource(running, golibvirt.DomainXMLInactive); live != "" || config != "" {
		t.Fatalf("after the eject: live %q, persistent %q", live, config)
	}
	s.expect(s.eject(running, "peer-secret"), http.StatusNoContent, "")

	events := s.events(running, 3)
	if e := events[1]; e.Data.Attached || e.Data.MediaPath != "" || e.OwnerID != 7 || e.Type != contract.TypeMediaChanged {
		t.Fatalf("the eject's event: %+v", e)
	}
	rows, err := s.Pool.Query(context.Background(), `SELECT actor_id, action, iso_path FROM media_changes WHERE vm_uuid = $1 ORDER BY id`, running)
	if err != nil {
		t.Fatal(err)
	}
	var history []string
	for rows.Next() {
		var actor int64
		var action, path string
		if err := rows.Scan(&actor, &action, &path); err != nil {
			t.Fatal(err)
		}
		history = append(history, action+" by "+map[bool]string{true: "system", false: "user"}[actor == 0]+" "+path)
	}
	if want := []string{"attach by user " + iso, "detach by system " + iso, "detach by system "}; len(history) != 3 ||
		history[0] != want[0] || history[1] != want[1] || history[2] != want[2] {
		t.Fatalf("history %q", history)
	}

	s.expect(s.eject(uuid.NewString(), "peer-secret"), http.StatusNotFound, "VM not found")
	s.expect(s.eject(s.defineVM(7, false, false), "peer-secret"), http.StatusConflict,
		"VM has no CD-ROM drive (it was not created by LIMEN); add a SATA CD-ROM drive to use media")
}
