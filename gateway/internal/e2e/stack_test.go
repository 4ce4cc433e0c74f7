package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"
	"libvirt.org/go/libvirtxml"

	"limen/gateway/internal/service"
	"limen/libs/config"
	"limen/libs/contract"
	"limen/libs/testkit/jwttest"
	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/pgtest"
	"limen/libs/testkit/quotatest"
	"limen/libs/testkit/testguest"
)

const internalToken = "e2e-internal-token"

// stack is a gateway in this process in front of a vm-service process.
type stack struct {
	t       testing.TB
	gateway string // host:port
	vm      string // vm-service's host:port
	keys    *jwttest.KeyIssuer
	broker  *kfake.Cluster
	lv      *golibvirt.Libvirt
	daemon  *libvirttest.Daemon
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newStack starts vm-service with env on top of the stack's settings, and the gateway.
func newStack(t testing.TB, env map[string]string) *stack {
	t.Helper()
	s := &stack{t: t, keys: jwttest.New(t), daemon: libvirttest.Shared(t), lv: libvirttest.Connect(t), vm: freeAddr(t)}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, contract.TopicVMEvents, contract.TopicUserEvents))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	s.broker = broker
	vmEnv := map[string]string{
		"QUOTA_SERVICE_URL": admitEverything(t),
		"LISTEN_ADDR":       s.vm, "DATABASE_URL": pgtest.NewDatabase(t), "KAFKA_BROKERS": strings.Join(broker.ListenAddrs(), ","),
		"LIMEN_JWKS_URL": s.keys.JWKSURL, "LIMEN_JWT_ISSUER": jwttest.Issuer, "LIMEN_JWT_AUDIENCE": jwttest.Audience,
		"LIBVIRT_URI": s.daemon.URI(), "LIBVIRT_SOCKET": s.daemon.SocketPath(), "LIMEN_DOMAIN_TYPE": "qemu",
		"LIMEN_STORAGE_POOL_PATH": filepath.Join(s.daemon.ImageDir(), "vms"), "LIMEN_INTERNAL_TOKEN": internalToken,
		"LIMEN_HOST_NAME": "e2e", "LOG_LEVEL": "warn", "LIMEN_DRAIN_TIMEOUT": "2s",
	}
	for k, v := range env {
		vmEnv[k] = v
	}
	s.startVMService(vmEnv)
	s.startGateway()
	return s
}

func (s *stack) startVMService(env map[string]string) {
	t := s.t
	cmd := exec.Command(vmServiceBin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		s.removeDomains()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vm-service's log:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + s.vm + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("vm-service exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm-service not ready after 60 s: %v: %s", err, logs.String())
		}
	}
}

func (s *stack) startGateway() {
	t := s.t
	for k, v := range map[string]string{"LIMEN_JWKS_URL": s.keys.JWKSURL, "KAFKA_BROKERS": "", "LIMEN_METRICS_ADDR": "off",
		"AUTH_SERVICE_URL": "http://127.0.0.1:1", "VM_SERVICE_URL": "http://" + s.vm, "MEDIA_SERVICE_URL": "",
		"LIMEN_INTERNAL_TOKEN": internalToken, "LIMEN_CORS_ORIGINS": "", "LIMEN_TRUSTED_PROXIES": "",
		"LIMEN_JWT_ISSUER": jwttest.Issuer, "LIMEN_JWT_AUDIENCE": jwttest.Audience} {
		t.Setenv(k, v)
	}
	cfg, err := config.Load[service.Config]()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := service.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { _ = svc.App().Listener(ln) }()
	t.Cleanup(func() {
		cancel()
		_ = svc.App().Shutdown()
	})
	s.gateway = ln.Addr().String()
}

// removeDomains deletes what the test's VMs left in libvirt, so no guest outlives the test.
func (s *stack) removeDomains() {
	doms, _, err := s.lv.ConnectListAllDomains(1, 0)
	if err != nil {
		return
	}
	for _, dom := range doms {
		if _, ours := contract.VMUUIDOfDomain(dom.Name); !ours {
			continue
		}
		_ = s.lv.DomainDestroy(dom)
		_ = s.lv.DomainUndefineFlags(dom, golibvirt.DomainUndefineManagedSave|golibvirt.DomainUndefineSnapshotsMetadata|golibvirt.DomainUndefineNvram)
	}
}

func (s *stack) token(userID int64, role string) string { return s.keys.Token(s.t, userID, role) }

// call asks the gateway; it answers the status and body.
func (s *stack) call(method, path, token, body string) (int, []byte) {
	s.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.gateway+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

type vmJSON struct {
	ID     int64  `json:"id"`
	UUID   string `json:"uuid"`
	Status string `json:"status"`
}

// create makes a VM through the gateway.
func (s *stack) create(token, name string, memoryMiB int) vmJSON {
	s.t.Helper()
	code, body := s.call("POST", "/api/vms", token, fmt.Sprintf(`{"name":%q,"cpu":1,"memory":%d,"os_type":"other"}`, name, memoryMiB))
	if code != http.StatusCreated {
		s.t.Fatalf("create: %d %s", code, body)
	}
	var vm vmJSON
	if err := json.Unmarshal(body, &vm); err != nil {
		s.t.Fatal(err)
	}
	return vm
}

// createGuest makes a VM through the gateway whose definition (vm-service's own: display, serial
// line) boots the test guest.
func (s *stack) createGuest(token, name string) vmJSON {
	s.t.Helper()
	vm := s.create(token, name, 128)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := testguest.Build(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	dom, err := s.lv.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		s.t.Fatal(err)
	}
	desc, err := s.lv.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
	if err != nil {
		s.t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(desc); err != nil {
		s.t.Fatal(err)
	}
	// The guest's kernel and initramfs, on vm-service's serial line rather than testguest's socket.
	serials, consoles := def.Devices.Serials, def.Devices.Consoles
	testguest.Attach(&def, img, filepath.Join(s.daemon.ImageDir(), "unused.sock"), testguest.Options{})
	def.Devices.Serials, def.Devices.Consoles = serials, consoles
	withGuest, err := def.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.lv.DomainDefineXML(withGuest); err != nil {
		s.t.Fatal(err)
	}
	return vm
}

// act runs an action through the gateway, which must succeed.
func (s *stack) act(token, vm, action string) {
	s.t.Helper()
	if code, body := s.call("POST", "/api/vms/"+vm+"/action", token, fmt.Sprintf(`{"action":%q}`, action)); code != http.StatusOK {
		s.t.Fatalf("%s: %d %s", action, code, body)
	}
}

type ticketJSON struct {
	WSURL     string    `json:"ws_url"`
	Protocol  string    `json:"protocol"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ticket asks the gateway for a console ticket, which must be issued.
func (s *stack) ticket(token, vm, protocol string) ticketJSON {
	s.t.Helper()
	code, body := s.call("GET", "/api/vms/"+vm+"/console?type="+protocol, token, "")
	var tk ticketJSON
	if code != http.StatusOK || json.Unmarshal(body, &tk) != nil || tk.Protocol != protocol ||
		!strings.HasPrefix(tk.WSURL, "ws://"+s.gateway+"/vnc/"+vm+"?token=") {
		s.t.Fatalf("console ticket: %d %s", code, body)
	}
	return tk
}

type statsJSON struct {
	Status             string  `json:"status"`
	CPUUsagePercent    float64 `json:"cpu_usage_percent"`
	MemoryUsedMB       int64   `json:"memory_used_mb"`
	MemoryTotalMB      int64   `json:"memory_total_mb"`
	MemoryUsagePercent float64 `json:"memory_usage_percent"`
	VCPUs              int     `json:"vcpus"`
	UptimeS            int64   `json:"uptime_s"`
}

func (s *stack) stats(token, vm string) statsJSON {
	s.t.Helper()
	code, body := s.call("GET", "/api/vms/"+vm+"/stats", token, "")
	var st statsJSON
	if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
		s.t.Fatalf("stats: %d %s", code, body)
	}
	return st
}

// displaySocket is the unix socket of a running VM's display, which this test (root) may open.
func (s *stack) displaySocket(vm string) string {
	s.t.Helper()
	dom, err := s.lv.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		s.t.Fatal(err)
	}
	desc, err := s.lv.DomainGetXMLDesc(dom, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(desc); err != nil {
		s.t.Fatal(err)
	}
	for _, g := range def.Devices.Graphics {
		if g.VNC != nil {
			for _, l := range g.VNC.Listeners {
				if l.Socket != nil && l.Socket.Socket != "" {
					return l.Socket.Socket
				}
			}
		}
	}
	s.t.Fatalf("no display socket in\n%s", desc)
	return ""
}

// admitEverything stands in for quota-service's internal API, admitting every change: these tests
// are about consoles and stats, not limits.
func admitEverything(t testing.TB) string {
	quota := httptest.NewServer(quotatest.AdmitEverything(internalToken))
	t.Cleanup(quota.Close)
	return quota.URL
}
