package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"limen/libs/libvirtconn"
	"limen/libs/testkit/libvirttest"
	"limen/media-service/internal/service"
)

// replica starts a second media-service over the stack's database, libvirt and library, as another
// replica behind the gateway would be, and returns its base URL.
func (s *stack) replica() string {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := libvirttest.Shared(s.t)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	conn := libvirtconn.New(libvirtconn.Config{URI: d.URI(), Socket: d.SocketPath()}, log)
	connDone := make(chan struct{})
	go func() { defer close(connDone); _ = conn.Run(ctx) }()
	svc, err := service.New(ctx, s.cfg, s.Pool, conn, log, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	runDone, serveDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); _ = svc.Run(ctx) }()
	go func() { defer close(serveDone); _ = svc.App().Listener(ln) }()
	s.t.Cleanup(func() {
		_ = svc.App().Shutdown()
		<-serveDone
		cancel()
		<-runDone
		<-connDone
	})
	return "http://" + ln.Addr().String()
}

func (s *stack) upload(name string, body []byte, headers map[string]string) answer {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.server+"/api/vms/isos?name="+name, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+s.Keys.Token(s.t, 9, "admin"))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return s.do(req)
}

func TestUpload_AnnouncedChecksumIsVerifiedBeforeTheISOAppears(t *testing.T) {
	s := newStack(t)
	content := bytes.Repeat([]byte("LIMEN-SUM-"), 100_000)
	sum := sha256.Sum256(content)
	good, wrong := hex.EncodeToString(sum[:]), strings.Repeat("ab", 32)

	s.expect(s.upload("wrong.iso", content, map[string]string{"X-Checksum-SHA256": wrong}), 400,
		"Upload checksum mismatch: announced SHA-256 "+wrong+", received "+good)
	s.expect(s.upload("bad.iso", content, map[string]string{"Content-Digest": "sha-256=nope"}), 400, "Invalid Content-Digest header")
	s.expect(s.upload("two.iso", content, map[string]string{"X-Checksum-SHA256": good, "Digest": "sha-256=" + base64.StdEncoding.EncodeToString(make([]byte, 32))}),
		400, "Checksum headers disagree")
	if entries, err := os.ReadDir(s.isoDir); err != nil || len(entries) != 0 {
		t.Fatalf("refused uploads left %v (%v)", entries, err)
	}

	a := s.expect(s.upload("right.iso", content, map[string]string{"Digest": "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])}), 201, "ISO uploaded successfully")
	if a.body["sha256"] != good {
		t.Fatalf("upload: %s", a.raw)
	}
	s.expect(s.upload("upper.iso", content, map[string]string{"X-Checksum-SHA256": strings.ToUpper(good),
		"Repr-Digest": "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"}), 201, "")
	list := s.expect(s.call("GET", "/api/vms/isos", 1, "user", nil), 200, "")
	if list.body["count"] != float64(2) {
		t.Fatalf("library: %s", list.raw)
	}
}

// Attaches of an ISO to many VMs, sent to two replicas, race its deletion: a deletion that succeeds
// leaves no VM (in its persistent definition, which a stopped VM's attach changes) pointing at the
// file, and a refused one leaves the file in place.
func TestAttachesOnTwoReplicasRacingADelete_NoVMHoldsTheDeletedISO(t *testing.T) {
	s := newStack(t)
	servers := []string{s.server, s.replica()}
	var vms []string
	for range 6 {
		vms = append(vms, s.defineVM(1, false, true))
	}
	token := s.Keys.Token(t, 9, "admin")
	post := func(server, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, server+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(answer)
	}
	for round := range 3 {
		name := "race-" + string(rune('a'+round)) + ".iso"
		path := s.makeISO(name)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, vm := range vms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				time.Sleep(time.Duration(i) * 5 * time.Millisecond) // some before the deletion, some after
				if code, answer := post(servers[i%2], "POST", "/api/vms/"+vm+"/media", `{"action":"attach","iso_path":"`+path+`"}`); code != 200 && code != 404 {
					t.Errorf("attach: %d %s", code, answer)
				}
			}()
		}
		var deleted int
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			deleted, _ = post(servers[round%2], "DELETE", "/api/vms/isos/"+name, "")
		}()
		close(start)
		wg.Wait()
		holding := 0
		for _, vm := range vms {
			if s.cdromSource(vm, golibvirt.DomainXMLInactive) == path {
				holding++
			}
		}
		_, statErr := os.Stat(path)
		switch deleted {
		case 200:
			if holding > 0 || !os.IsNotExist(statErr) {
				t.Fatalf("round %d: deleted, yet %d VMs hold %s (file: %v)", round, holding, path, statErr)
			}
		case 409:
			if statErr != nil {
				t.Fatalf("round %d: deletion refused, yet the file is gone: %v", round, statErr)
			}
		default:
			t.Fatalf("round %d: delete answered %d", round, deleted)
		}
		t.Logf("round %d: delete %d, %d VMs hold the ISO", round, deleted, holding)
		for _, vm := range vms {
			s.expect(s.call("POST", "/api/vms/"+vm+"/media", 1, "user", map[string]any{"action": "detach"}), 200, "")
		}
	}
	if parts, _ := filepath.Glob(filepath.Join(s.isoDir, ".limen-upload-*")); len(parts) != 0 {
		t.Fatalf("temporary files: %v", parts)
	}
}
