// Package local holds the scripts behind `make run` (run.sh, ensure-deps.sh) and their end-to-end
// test: start the whole local stack as a user would, log in, stop it, and check nothing is left.
package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"limen/libs/testkit/libvirttest"
)

const (
	buildTimeout  = 10 * time.Minute // a cold build of every service on a small machine
	healthTimeout = 120 * time.Second
	stopTimeout   = 30 * time.Second
)

func TestStack_RunLoginStop(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not in PATH")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	// As root, Postgres runs as the postgres user, which must reach $LIMEN_DATA_DIR/postgres;
	// t.TempDir makes its directories 0700.
	for _, d := range []string{filepath.Dir(dataDir), dataDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ports := freePorts(t, 6)
	pgPort, kafkaAddr, authAddr, gwAddr, vmAddr, mediaAddr := ports[0], addr(ports[1]), addr(ports[2]), addr(ports[3]), addr(ports[4]), addr(ports[5])
	// vm-service gets a private libvirtd, so the test never touches (or depends on) the host's.
	libvirtd, err := libvirttest.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := libvirtd.Stop(); err != nil {
			t.Error(err)
		}
	})
	isoDir := filepath.Join(libvirtd.ImageDir(), "isos")
	makeISO(t, filepath.Join(isoDir, "stack-test.iso"))

	cmd := exec.Command("bash", filepath.Join(root, "deployments", "local", "run.sh"))
	cmd.Dir = root
	cmd.Env = append(cleanEnv(),
		"LIMEN_DATA_DIR="+dataDir,
		"LIMEN_PG_PORT="+pgPort,
		"LIMEN_KAFKA_ADDR="+kafkaAddr,
		"LIMEN_AUTH_ADDR="+authAddr,
		"LIMEN_GATEWAY_ADDR="+gwAddr,
		"LIMEN_VM_ADDR="+vmAddr,
		"LIMEN_START_LIBVIRTD=0",
		"LIBVIRT_URI="+libvirtd.URI(),
		"LIBVIRT_SOCKET="+libvirtd.SocketPath(),
		"LIMEN_STORAGE_POOL_PATH="+filepath.Join(libvirtd.ImageDir(), "vms"),
		"LIMEN_VM_STOP_TIMEOUT=2s",
		"LIMEN_MEDIA_ADDR="+mediaAddr,
		"LIMEN_ISO_DIR="+isoDir,
		"LIMEN_LOG_TEE=0",
		fmt.Sprintf("LIMEN_HEALTH_TIMEOUT=%d", int(healthTimeout.Seconds())),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // do not hang on a descendant that keeps our output pipe open
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			stopPostgres(t, filepath.Join(dataDir, "postgres"))
		}
		if t.Failed() {
			t.Logf("run.sh output:\n%s", out.String())
			logs, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("---- %s (last 3 KiB)\n%s", filepath.Base(l), tail(b, 3<<10))
			}
		}
	})

	// 1. Built, then healthy.
	waitFor(t, exited, buildTimeout, "the build (bin/gateway)", func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "bin", "gateway"))
		return err == nil
	})
	healthURL := "http://" + gwAddr + "/api/health"
	waitFor(t, exited, healthTimeout, "GET "+healthURL+" = 200 and run.sh's banner", func() bool {
		resp, err := http.Get(healthURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && strings.Contains(out.String(), "LIMEN is up")
	})

	// 2. The admin it printed can log in.
	pw, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
	if err != nil {
		t.Fatalf("admin password file: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dataDir, "admin-password")); st.Mode().Perm() != 0o600 {
		t.Errorf("admin-password mode %v, want 0600", st.Mode().Perm())
	}
	password := strings.TrimSpace(string(pw))
	if !strings.Contains(out.String(), password) {
		t.Errorf("run.sh did not print the admin password")
	}
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": password})
	resp, err := http.Post("http://"+gwAddr+"/api/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var login struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &login) != nil || login.Token == "" {
		t.Errorf("login: %d %s; want 200 with a token", resp.StatusCode, raw)
	}

	// 3. The contract's VM and auth rules hold through the gateway (VMs first: the auth walk ends with
	// failed logins that lock this client address out).
	checkVMContract(t, "http://"+gwAddr, password)
	checkMediaContract(t, "http://"+gwAddr, password)
	checkLiveStatus(t, "http://"+gwAddr, password)
	checkAuthContract(t, "http://"+gwAddr, password)

	// 4. SIGTERM to the process group: everything stops, exit 0, within 30 s.
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("run.sh after SIGTERM: %v; want exit 0", err)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("run.sh still running %v after SIGTERM", stopTimeout)
	}

	// 4. Nothing it started is left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := leftovers(pgid, dataDir, append([]string{addr(pgPort)}, kafkaAddr, authAddr, gwAddr, vmAddr, mediaAddr))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after stop: %s", strings.Join(left, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// makeISO writes a small ISO image at path, readable by the private libvirtd's user.
func makeISO(t *testing.T, path string) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte("LIMEN"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("genisoimage", "-quiet", "-o", path, "-V", "LIMEN", "-J", "-r", src).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v: %s", err, out)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// leftovers lists what still runs: listeners on our ports, processes in the group, postgres.
func leftovers(pgid int, dataDir string, addrs []string) []string {
	var left []string
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			c.Close()
			left = append(left, "a listener on "+a)
		}
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		left = append(left, fmt.Sprintf("processes in group %d", pgid))
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "postmaster.pid")); err == nil {
		left = append(left, "postgres (postmaster.pid present)")
	}
	// Our binaries live in dataDir/bin and postgres runs with -D dataDir/postgres.
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(dataDir)) {
			left = append(left, fmt.Sprintf("process %s: %s", filepath.Base(filepath.Dir(f)), bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return left
}

// waitFor polls cond every 200 ms until it holds; it fails the test if run.sh exits or time runs out.
func waitFor(t *testing.T, exited <-chan error, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case err := <-exited:
			t.Fatalf("run.sh exited (%v) while waiting for %s", err, what)
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// cleanEnv is the test's environment without anything that would point the stack elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LIMEN_"), strings.HasSuffix(k, "_SERVICE_URL"),
			strings.HasPrefix(k, "LIBVIRT_"),
			k == "DATABASE_URL", k == "KAFKA_BROKERS", k == "LISTEN_ADDR", k == "OTEL_EXPORTER_OTLP_ENDPOINT":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, p)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func addr(port string) string { return "127.0.0.1:" + port }

// stopPostgres is the failure path's safety net: stop a cluster run.sh may have left.
func stopPostgres(t *testing.T, pgdata string) {
	if _, err := os.Stat(filepath.Join(pgdata, "postmaster.pid")); err != nil {
		return
	}
	pgCtl, err := exec.LookPath("pg_ctl")
	if err != nil {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
		if len(matches) == 0 {
			t.Logf("cannot stop postgres in %s: pg_ctl not found", pgdata)
			return
		}
		pgCtl = matches[len(matches)-1]
	}
	args := []string{pgCtl, "-D", pgdata, "-m", "immediate", "-w", "stop"}
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Logf("stopping postgres in %s: %v: %s", pgdata, err, out)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a child's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
