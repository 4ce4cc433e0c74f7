package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/contract"
	"limen/libs/testkit"
	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/kafkatest"
	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/pgtest"
	"limen/libs/testkit/servicetest"
	"limen/media-service/internal/service"
	"limen/media-service/migrations"
)

func TestMain(m *testing.M) { testkit.Main(m, pgtest.StartShared, libvirttest.StartShared) }

const topic = contract.TopicMediaEvents

// stack is one media-service over the component-test dependencies (servicetest: a fresh database,
// the package's libvirtd, a broker of its own) and a stand-in for vm-service's internal API that knows
// the VMs the test defines.
type stack struct {
	*servicetest.Stack
	t       testing.TB
	app     *service.Service
	server  string
	lv      *golibvirt.Libvirt
	isoDir  string
	isoPool string
	cfg     service.Config

	mu     sync.Mutex
	owners map[string]int64 // VM uuid -> owner, as vm-service would answer
}

func newStack(t testing.TB) *stack {
	t.Helper()
	deps := servicetest.New(t, servicetest.Options{Schema: "media", Migrations: migrations.FS,
		Partitions: map[string]int32{topic: 3}})
	s := &stack{Stack: deps, t: t, owners: map[string]int64{},
		isoDir: filepath.Join(deps.Daemon.ImageDir(), "isos-"+uuid.NewString()[:8]), isoPool: "isos-" + uuid.NewString()[:8]}
	vms := httptest.NewServer(http.HandlerFunc(s.vmService))
	s.cfg = service.Config{
		Settings:     deps.Settings(),
		KafkaBrokers: deps.Broker.ListenAddrs(), VMServiceURL: vms.URL, InternalToken: "peer-secret", ISODir: s.isoDir, ISOPool: s.isoPool,
		MaxUploadBytes: 8 << 20,
	}
	ctx, cancel := context.WithCancel(deps.Ctx)
	var err error
	if s.app, err = service.New(ctx, s.cfg, deps.Pool, deps.Conn, deps.Log, nil); err != nil {
		cancel()
		vms.Close()
		t.Fatal(err)
	}
	apidoc.CheckRoutes(t, service.Name, s.app.App())
	s.lv, _ = deps.Conn.Client()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.server = "http://" + ln.Addr().String()
	runDone, serveDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(runDone); _ = s.app.Run(ctx) }()
	go func() { defer close(serveDone); _ = s.app.App().Listener(ln) }()
	t.Cleanup(func() {
		_ = s.app.App().Shutdown()
		<-serveDone
		s.removeAll()
		cancel()
		<-runDone
		vms.Close()
	})
	return s
}

// vmService answers GET /internal/vms/{uuid} as vm-service does.
func (s *stack) vmService(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer peer-secret" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	ref := strings.TrimPrefix(r.URL.Path, "/internal/vms/")
	s.mu.Lock()
	owner, ok := s.owners[ref]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":404,"message":"VM not found"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"uuid": ref, "owner_id": owner, "status": "Running"})
}

// removeAll destroys the test's domains and its ISO pool.
func (s *stack) removeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.owners {
		if dom, err := s.lv.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(id))); err == nil {
			_ = s.lv.DomainDestroy(dom)
			_ = s.lv.DomainUndefine(dom)
		}
	}
	if pool, err := s.lv.StoragePoolLookupByName(s.isoPool); err == nil {
		_ = s.lv.StoragePoolDestroy(pool)
		_ = s.lv.StoragePoolUndefine(pool)
	}
	_ = os.RemoveAll(s.isoDir)
}

// defineVM defines a LIMEN-shaped guest (q35, empty SATA CD-ROM, as vm-service makes them), starts
// it when running, and tells the vm-service stand-in who owns it.
func (s *stack) defineVM(owner int64, running, withCDROM bool) string {
	s.t.Helper()
	id := uuid.New()
	cdrom := fmt.Sprintf(`<disk type="file" device="cdrom"><driver name="qemu" type="raw"/><target dev="%s" bus="%s"/><readonly/></disk>`,
		contract.CDROMTarget, contract.CDROMBus)
	if !withCDROM {
		cdrom = ""
	}
	dom, err := s.lv.DomainDefineXML(fmt.Sprintf(`<domain type="qemu"><name>%s</name><uuid>%s</uuid>
		<memory unit="MiB">64</memory><vcpu>1</vcpu><os><type arch="x86_64" machine="q35">hvm</type></os>
		<devices>%s</devices></domain>`, contract.DomainName(id.String()), id, cdrom))
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.owners[id.String()] = owner
	s.mu.Unlock()
	if running {
		if err := s.lv.DomainCreate(dom); err != nil {
			s.t.Fatal(err)
		}
	}
	return id.String()
}

// makeISO puts a small ISO image into the library directory.
func (s *stack) makeISO(name string) string {
	s.t.Helper()
	src := s.t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "readme.txt"), []byte(name), 0o644); err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(s.isoDir, name)
	if out, err := exec.Command("genisoimage", "-quiet", "-o", path, "-V", "LIMEN", "-J", "-r", src).CombinedOutput(); err != nil {
		s.t.Fatalf("genisoimage: %v %s", err, out)
	}
	_ = os.Chmod(path, 0o644)
	return path
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (s *stack) call(method, path string, userID int64, role string, body any) answer {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.server+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if userID != 0 {
		req.Header.Set("Authorization", "Bearer "+s.Keys.Token(s.t, userID, role))
	}
	return s.do(req)
}

func (s *stack) do(req *http.Request) answer {
	s.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	apidoc.Check(s.t, req, resp)
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (s *stack) expect(a answer, status int, message string) answer {
	s.t.Helper()
	if a.status != status || message != "" && a.body["message"] != message {
		s.t.Fatalf("got %d %s; want %d %q", a.status, a.raw, status, message)
	}
	return a
}

// cdromSource is what the drive holds in the live (flags 0) or persistent definition.
func (s *stack) cdromSource(vm string, flags golibvirt.DomainXMLFlags) string {
	s.t.Helper()
	dom, err := s.lv.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		s.t.Fatal(err)
	}
	desc, err := s.lv.DomainGetXMLDesc(dom, flags)
	if err != nil {
		s.t.Fatal(err)
	}
	i := strings.Index(desc, `device="cdrom"`)
	if i < 0 {
		i = strings.Index(desc, `device='cdrom'`)
	}
	disk := desc[i:]
	disk = disk[:strings.Index(disk, "</disk>")]
	const marker = "<source file='"
	if j := strings.Index(disk, marker); j >= 0 {
		rest := disk[j+len(marker):]
		return rest[:strings.Index(rest, "'")]
	}
	return ""
}

type event struct {
	Type     string `json:"type"`
	Subject  string `json:"subject"`
	OwnerID  int64  `json:"ownerid"`
	Sequence int64  `json:"sequence"`
	Data     struct {
		VMUUID    string `json:"vm_uuid"`
		MediaPath string `json:"media_path"`
		Attached  bool   `json:"attached"`
	} `json:"data"`
}

// events reads want events of vm from the start of the topic.
func (s *stack) events(vm string, want int) []event {
	s.t.Helper()
	return kafkatest.Read(s.t, s.Broker.ListenAddrs(), topic, func(r *kgo.Record) (event, bool) {
		var e event
		return e, json.Unmarshal(r.Value, &e) == nil && e.Subject == vm && string(r.Key) == vm
	}, func(got []event) bool { return len(got) >= want })
}

func TestAttachSwapEject_OnARunningVM_AndAttachToAStoppedOne(t *testing.T) {
	s := newStack(t)
	ubuntu, debian := s.makeISO("ubuntu.iso"), s.makeISO("debian.iso")
	running := s.defineVM(1, true, true)

	list := s.expect(s.call("GET", "/api/vms/isos", 1, "user", nil), 200, "")
	if list.body["count"] != float64(2) {
		t.Fatalf("isos: %s", list.raw)
	}
	first := list.body["isos"].([]any)[0].(map[string]any)
	if first["name"] != "debian.iso" || first["path"] != debian || first["size"].(float64) <= 0 || first["modified"] == "" {
		t.Fatalf("iso entry: %v", first)
	}

	a := s.expect(s.call("POST", "/api/vms/"+running+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": ubuntu}), 200, "Media attached successfully")
	if a.raw != fmt.Sprintf(`{"message":"Media attached successfully","vm_uuid":"%s","iso_path":"%s"}`, running, ubuntu) {
		t.Fatalf("attach body: %s", a.raw)
	}
	if live, config := s.cdromSource(running, 0), s.cdromSource(running, golibvirt.DomainXMLInactive); live != ubuntu || config != ubuntu {
		t.Fatalf("after attach: live %q, persistent %q", live, config)
	}
	// Swap while running, by bare name.
	s.expect(s.call("POST", "/api/vms/"+running+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": "debian.iso"}), 200, "Media attached successfully")
	if live := s.cdromSource(running, 0); live != debian {
		t.Fatalf("after swap: %q", live)
	}
	m := s.expect(s.call("GET", "/api/vms/"+running+"/media", 1, "user", nil), 200, "")
	if m.raw != fmt.Sprintf(`{"vm_uuid":"%s","media_path":"%s","attached":true}`, running, debian) {
		t.Fatalf("media: %s", m.raw)
	}
	d := s.expect(s.call("POST", "/api/vms/"+running+"/media", 1, "user", map[string]any{"action": "detach"}), 200, "Media detached successfully")
	if d.raw != fmt.Sprintf(`{"message":"Media detached successfully","vm_uuid":"%s"}`, running) {
		t.Fatalf("detach body: %s", d.raw)
	}
	if live, config := s.cdromSource(running, 0), s.cdromSource(running, golibvirt.DomainXMLInactive); live != "" || config != "" {
		t.Fatalf("after eject: live %q, persistent %q", live, config)
	}
	m = s.expect(s.call("GET", "/api/vms/"+running+"/media", 1, "user", nil), 200, "")
	if m.raw != fmt.Sprintf(`{"vm_uuid":"%s","media_path":"","attached":false}`, running) {
		t.Fatalf("media after eject: %s", m.raw)
	}

	stopped := s.defineVM(1, false, true)
	s.expect(s.call("POST", "/api/vms/"+stopped+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": ubuntu}), 200, "Media attached successfully")
	if config := s.cdromSource(stopped, golibvirt.DomainXMLInactive); config != ubuntu {
		t.Fatalf("stopped VM: %q", config)
	}

	events := s.events(running, 3)
	if !events[0].Data.Attached || events[0].Data.MediaPath != ubuntu || events[2].Data.Attached || events[0].OwnerID != 1 ||
		events[0].Type != "limen.media.changed" || !(events[0].Sequence < events[1].Sequence && events[1].Sequence < events[2].Sequence) {
		t.Fatalf("events %+v", events)
	}
	var history int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM media_changes WHERE actor_id = 1`).Scan(&history); err != nil || history != 4 {
		t.Fatalf("history rows %d (%v)", history, err)
	}
}

func TestErrors_RefusedWithTheirMessages_AndNothingChanges(t *testing.T) {
	s := newStack(t)
	iso := s.makeISO("ubuntu.iso")
	vm := s.defineVM(1, false, true)
	bare := s.defineVM(1, false, false)
	outside := filepath.Join(filepath.Dir(s.isoDir), "outside.iso")
	if err := os.WriteFile(outside, []byte("not in the library"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(outside)
	if err := os.Symlink(outside, filepath.Join(s.isoDir, "escape.iso")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.isoDir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := "/api/vms/" + vm + "/media"
	cases := []struct {
		user    int64
		body    any
		status  int
		message string
	}{
		{1, map[string]any{"action": "explode"}, 400, "Invalid action: explode. Valid actions: attach, detach"},
		{1, map[string]any{"action": "attach"}, 400, "ISO path is required for attach"},
		{1, map[string]any{"action": "attach", "iso_path": "/etc/passwd"}, 400, "ISO path must be inside the ISO library"},
		{1, map[string]any{"action": "attach", "iso_path": s.isoDir + "/../outside.iso"}, 400, "ISO path must be inside the ISO library"},
		{1, map[string]any{"action": "attach", "iso_path": s.isoDir + "/escape.iso"}, 400, "ISO path must be inside the ISO library"},
		{1, map[string]any{"action": "attach", "iso_path": s.isoDir + "/notes.txt"}, 400, "ISO path must be inside the ISO library"},
		{1, map[string]any{"action": "attach", "iso_path": s.isoDir + "/missing.iso"}, 404, "ISO file not found: " + s.isoDir + "/missing.iso"},
		{2, map[string]any{"action": "attach", "iso_path": iso}, 404, "VM not found"},
		{2, map[string]any{"action": "detach"}, 404, "VM not found"},
	}
	for _, c := range cases {
		a := s.call("POST", path, c.user, "user", c.body)
		if a.status != c.status || a.body["message"] != c.message || a.body["code"] != float64(c.status) {
			t.Errorf("%v: %d %s", c.body, a.status, a.raw)
		}
	}
	s.expect(s.call("GET", path, 0, "", nil), 401, "Authentication required")
	s.expect(s.call("GET", path, 2, "user", nil), 404, "VM not found")
	s.expect(s.call("GET", "/api/vms/"+uuid.NewString()+"/media", 1, "user", nil), 404, "VM not found")
	s.expect(s.call("POST", "/api/vms/"+bare+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": iso}), 409, "")
	// Admins act on anyone's VM.
	s.expect(s.call("GET", path, 9, "admin", nil), 200, "")

	if src := s.cdromSource(vm, golibvirt.DomainXMLInactive); src != "" {
		t.Fatalf("a refused request changed the drive: %q", src)
	}
	list := s.expect(s.call("GET", "/api/vms/isos", 1, "user", nil), 200, "")
	if list.body["count"] != float64(1) {
		t.Fatalf("the library lists more than its one ISO: %s", list.raw)
	}
}

func TestConcurrentAttachAndEject_DriveMatchesTheLastRecordedChange(t *testing.T) {
	s := newStack(t)
	iso := s.makeISO("ubuntu.iso")
	vm := s.defineVM(1, true, true)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"action": "detach"}
			if i%2 == 0 {
				body = map[string]any{"action": "attach", "iso_path": iso}
			}
			if a := s.call("POST", "/api/vms/"+vm+"/media", 1, "user", body); a.status != 200 {
				t.Errorf("%v: %d %s", body, a.status, a.raw)
			}
		}()
	}
	wg.Wait()
	var action, path string
	if err := s.Pool.QueryRow(context.Background(), `SELECT action, iso_path FROM media_changes ORDER BY id DESC LIMIT 1`).Scan(&action, &path); err != nil {
		t.Fatal(err)
	}
	want := ""
	if action == "attach" {
		want = path
	}
	if live, config := s.cdromSource(vm, 0), s.cdromSource(vm, golibvirt.DomainXMLInactive); live != want || config != want {
		t.Fatalf("last change %s %q, drive live %q persistent %q", action, path, live, config)
	}
}

func TestUploadAndDelete_AdminOnly_CappedAndRefusedWhileAttached(t *testing.T) {
	s := newStack(t)
	upload := func(userID int64, role, name string, body []byte) answer {
		req, _ := http.NewRequest("POST", s.server+"/api/vms/isos?name="+name, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Authorization", "Bearer "+s.Keys.Token(t, userID, role))
		return s.do(req)
	}
	content := bytes.Repeat([]byte("LIMEN-ISO-"), 300_000) // 3 MB, more than the 1 MiB JSON limit
	sum := sha256.Sum256(content)

	s.expect(upload(1, "user", "mine.iso", content), 403, "")
	a := s.expect(upload(9, "admin", "mine.iso", content), 201, "ISO uploaded successfully")
	if a.body["sha256"] != hex.EncodeToString(sum[:]) || a.body["iso"].(map[string]any)["size"] != float64(len(content)) {
		t.Fatalf("upload: %s", a.raw)
	}
	if got, err := os.ReadFile(filepath.Join(s.isoDir, "mine.iso")); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("stored file differs (%v)", err)
	}
	s.expect(upload(9, "admin", "mine.iso", content), 409, "ISO already exists: mine.iso")
	s.expect(upload(9, "admin", "../evil.iso", content), 400, "")
	s.expect(upload(9, "admin", "huge.iso", make([]byte, 9<<20)), 413, "")
	if _, err := os.Stat(filepath.Join(s.isoDir, "huge.iso")); !os.IsNotExist(err) {
		t.Fatalf("an over-limit upload left a file: %v", err)
	}

	vm := s.defineVM(1, false, true)
	s.expect(s.call("POST", "/api/vms/"+vm+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": "mine.iso"}), 200, "")
	s.expect(s.call("DELETE", "/api/vms/isos/mine.iso", 1, "user", nil), 403, "")
	s.expect(s.call("DELETE", "/api/vms/isos/mine.iso", 9, "admin", nil), 409, "")
	s.expect(s.call("POST", "/api/vms/"+vm+"/media", 1, "user", map[string]any{"action": "detach"}), 200, "")
	s.expect(s.call("DELETE", "/api/vms/isos/mine.iso", 9, "admin", nil), 200, "ISO deleted successfully")
	s.expect(s.call("DELETE", "/api/vms/isos/mine.iso", 9, "admin", nil), 404, "ISO file not found: mine.iso")
	if list := s.expect(s.call("GET", "/api/vms/isos", 1, "user", nil), 200, ""); list.body["count"] != float64(0) {
		t.Fatalf("after delete: %s", list.raw)
	}
}
