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
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"limen/libs/testkit/libvirttest"
)

const (
	buildTimeout  = 10 * time.Minute // a cold build of every service on a small machine
	healthTimeout = 120 * time.Second
	stopTimeout   = 30 * time.Second
)

// stackDirs returns the repository root and a fresh $LIMEN_DATA_DIR, skipping without go.
func stackDirs(t *testing.T) (root, dataDir string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not in PATH")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dataDir = t.TempDir()
	// As root, Postgres runs as the postgres user, which must reach $LIMEN_DATA_DIR/postgres;
	// t.TempDir makes its directories 0700.
	for _, d := range []string{filepath.Dir(dataDir), dataDir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, dataDir
}

func TestStack_RunLoginStop(t *testing.T) {
	root, dataDir := stackDirs(t)
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

	sh := startStack(t, root, dataDir,
		"LIMEN_DATA_DIR="+dataDir,
		"LIMEN_PG_PORT="+pgPort,
		"LIMEN_KAFKA_ADDR="+kafkaAddr,
		"LIMEN_AUTH_ADDR="+authAddr,
		"LIMEN_GATEWAY_ADDR="+gwAddr,
		// No fixed port: the gateway's internal listener (default 127.0.0.1:18444) would collide
		// with a `make run` on this host.
		"LIMEN_METRICS_ADDR=off",
		"LIMEN_VM_ADDR="+vmAddr,
		"LIMEN_START_LIBVIRTD=0",
		"LIBVIRT_URI="+libvirtd.URI(),
		"LIBVIRT_SOCKET="+libvirtd.SocketPath(),
		"LIMEN_STORAGE_POOL_PATH="+filepath.Join(libvirtd.ImageDir(), "vms"),
		"LIMEN_VM_STOP_TIMEOUT=2s",
		"LIMEN_MEDIA_ADDR="+mediaAddr,
		"LIMEN_ISO_DIR="+isoDir,
		"LIMEN_LOG_TEE=0",
		"LIMEN_CORS_ORIGINS="+browserOrigin,
		fmt.Sprintf("LIMEN_HEALTH_TIMEOUT=%d", int(healthTimeout.Seconds())),
		"LIMEN_QUOTA_RESERVATION_TTL="+quotaReservationTTL.String(),
		"LIMEN_QUOTA_RECONCILE_INTERVAL="+quotaReconcileEvery.String(),
	)
	out, exited := &sh.out, sh.exited

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

	// 3. Its Postgres takes no login without the password it keeps (and gave the services).
	pgPassword := checkPostgresAuth(t, pgPort, dataDir)

	// 4. The contract's VM and auth rules hold through the gateway (VMs first: the auth walk ends with
	// failed logins that lock this client address out).
	checkVMContract(t, "http://"+gwAddr, password)
	checkQuota(t, "http://"+gwAddr, password, dataDir)
	checkQuotaAfterCrash(t, "http://"+gwAddr, password, dataDir, libvirtd)
	checkMediaContract(t, "http://"+gwAddr, password)
	checkLiveStatus(t, "http://"+gwAddr, password)
	checkRevocation(t, "http://"+gwAddr, password)
	checkBrowserSession(t, "http://"+gwAddr, password)
	checkAuthContract(t, "http://"+gwAddr, password)

	// 5. SIGTERM to the process group: everything stops, exit 0, within 30 s.
	sh.stop()

	// 6. Nothing it started is left, and no log holds the database password.
	checkNotLogged(t, dataDir, pgPassword, out.String())
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := leftovers(sh.pgid, dataDir, append([]string{addr(pgPort)}, kafkaAddr, authAddr, gwAddr, vmAddr, mediaAddr))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind after stop: %s", strings.Join(left, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStack_UpgradesTrustCluster: a cluster from before passwords (initdb --auth=trust, as run.sh made
// them) gets the password and a scram-sha-256 pg_hba.conf before it listens and keeps its data; the
// next run logs in with the same password. Each run is stopped once its Postgres is up.
func TestStack_UpgradesTrustCluster(t *testing.T) {
	root, dataDir := stackDirs(t)
	ports := freePorts(t, 6)
	pgPort := ports[0]
	pgdata := filepath.Join(dataDir, "postgres")
	ctx := context.Background()

	// The old cluster, as run.sh made it: every local login trusted; a table in limen.
	if err := os.Mkdir(pgdata, 0o700); err != nil {
		t.Fatal(err)
	}
	if uid, gid, ok := postgresUser(t); ok {
		if err := os.Chown(pgdata, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	runPostgresTool(t, "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	t.Cleanup(func() { stopPostgres(t, pgdata) })
	runPostgresTool(t, "pg_ctl", "-D", pgdata, "-l", filepath.Join(pgdata, "before-upgrade.log"), "-w", "-t", "60",
		"-o", "-p "+pgPort+" -k /tmp -c listen_addresses=127.0.0.1", "start")
	conn, err := pgConnect(ctx, "postgres://postgres@"+addr(pgPort)+"/postgres?sslmode=disable", "")
	if err != nil {
		t.Fatalf("the trust cluster refused a login without password: %v", err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE limen")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err = pgConnect(ctx, "postgres://postgres@"+addr(pgPort)+"/limen?sslmode=disable", ""); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('from before')")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runPostgresTool(t, "pg_ctl", "-D", pgdata, "-m", "fast", "-w", "stop")

	var passwords []string
	for run := 1; run <= 2; run++ {
		sh := startStack(t, root, dataDir,
			"LIMEN_DATA_DIR="+dataDir,
			"LIMEN_PG_PORT="+pgPort,
			"LIMEN_KAFKA_ADDR="+addr(ports[1]),
			"LIMEN_AUTH_ADDR="+addr(ports[2]),
			"LIMEN_GATEWAY_ADDR="+addr(ports[3]),
			"LIMEN_VM_ADDR="+addr(ports[4]),
			"LIMEN_MEDIA_ADDR="+addr(ports[5]),
			"LIMEN_START_LIBVIRTD=0",
			// Should vm-service start before the stop: a libvirt that is not there, never the host's.
			"LIBVIRT_URI=qemu:///session",
			"LIBVIRT_SOCKET="+filepath.Join(dataDir, "no-libvirtd.sock"),
			"LIMEN_LOG_TEE=0",
		)
		// run.sh starts the broker once Postgres is up and DATABASE_URL set.
		waitFor(t, sh.exited, buildTimeout, "run "+strconv.Itoa(run)+" to start Postgres", func() bool {
			return strings.Contains(sh.out.String(), "starting limen-broker")
		})
		password := checkPostgresAuth(t, pgPort, dataDir)
		passwords = append(passwords, password)
		var kept string
		if conn, err := pgConnect(ctx, "postgres://postgres@"+addr(pgPort)+"/limen?sslmode=disable", password); err != nil {
			t.Errorf("run %d: %v", run, err)
		} else {
			if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&kept); err != nil || kept != "from before" {
				t.Errorf("run %d: the old cluster's data: %q, %v", run, kept, err)
			}
			conn.Close(ctx)
		}
		sh.stop()
		checkNotLogged(t, dataDir, password, sh.out.String())
		if upgraded := strings.Contains(sh.out.String(), "trust -> scram-sha-256"); upgraded != (run == 1) {
			t.Errorf("run %d: pg_hba.conf upgraded: %v, want %v", run, upgraded, run == 1)
		}
	}
	if passwords[0] != passwords[1] {
		t.Errorf("the second run has another password than the first")
	}
	if backup, err := os.ReadFile(filepath.Join(pgdata, "pg_hba.conf.trust-backup")); err != nil || !bytes.Contains(backup, []byte("trust")) {
		t.Errorf("pg_hba.conf.trust-backup: %v; want the old pg_hba.conf with its trust lines", err)
	}
}

// checkPostgresAuth checks that the cluster run.sh runs on pgPort takes no login without the password
// it keeps in dataDir/postgres/limen-password (mode 0600): neither over TCP nor over its Unix socket,
// with no password or a wrong one; every pg_hba.conf rule is scram-sha-256. It returns the password.
func checkPostgresAuth(t *testing.T, pgPort, dataDir string) string {
	t.Helper()
	file := filepath.Join(dataDir, "postgres", "limen-password")
	info, err := os.Stat(file)
	if err != nil {
		t.Fatalf("postgres password file: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", file, info.Mode().Perm())
	}
	if uid, _, ok := postgresUser(t); ok && info.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("%s is not the postgres user's", file)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	password := string(raw)
	if len(password) < 20 || strings.Trim(password, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Fatalf("%s holds %d bytes; want 20 or more letters and digits", file, len(password))
	}

	ctx := context.Background()
	tcp := "postgres://postgres@" + addr(pgPort) + "/limen?sslmode=disable"
	socket := "host=/tmp port=" + pgPort + " user=postgres dbname=limen sslmode=disable"
	for _, dsn := range []string{tcp, socket} {
		for what, try := range map[string]string{"no password": "", "a wrong password": "x" + password} {
			conn, err := pgConnect(ctx, dsn, try)
			if err == nil {
				conn.Close(ctx)
				t.Errorf("%s with %s: logged in; want refused", dsn, what)
				continue
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				t.Errorf("%s with %s: %v; want refused with invalid_password (28P01)", dsn, what, err)
			}
		}
	}

	conn, err := pgConnect(ctx, tcp, password)
	if err != nil {
		t.Fatalf("login with the password of %s: %v", file, err)
	}
	defer conn.Close(ctx)
	var others int
	var encryption string
	var scram bool
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_hba_file_rules WHERE auth_method <> 'scram-sha-256' OR error IS NOT NULL),
		current_setting('password_encryption'),
		(SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres')`).Scan(&others, &encryption, &scram); err != nil {
		t.Fatal(err)
	}
	if others != 0 || encryption != "scram-sha-256" || !scram {
		t.Errorf("pg_hba.conf rules other than scram-sha-256: %d, password_encryption %q, postgres has a SCRAM verifier: %v; want 0, scram-sha-256, true",
			others, encryption, scram)
	}
	return password
}

// pgConnect logs in with exactly this password (none from PGPASSWORD or ~/.pgpass).
func pgConnect(ctx context.Context, dsn, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// checkNotLogged fails the test if run.sh's output or a file in dataDir/logs holds secret.
func checkNotLogged(t *testing.T, dataDir, secret, output string) {
	t.Helper()
	if strings.Contains(output, secret) {
		t.Errorf("run.sh printed the database password")
	}
	logs, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the database password", l)
		}
	}
}

// postgresUser is the uid and gid Postgres runs as when the tests run as root (ok false otherwise).
func postgresUser(t *testing.T) (uid, gid int, ok bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		return 0, 0, false
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root needs the postgres user: %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, true
}

// postgresTool is the path of a PostgreSQL program: on PATH, else the newest Debian install.
func postgresTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) < pgMajor(matches[j]) })
	if len(matches) == 0 {
		return "", fmt.Errorf("%s not found (deployments/local/ensure-deps.sh installs PostgreSQL)", name)
	}
	return matches[len(matches)-1], nil
}

func pgMajor(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// runPostgresTool runs a PostgreSQL program, as the postgres user when the tests run as root.
func runPostgresTool(t *testing.T, name string, args ...string) {
	t.Helper()
	path, err := postgresTool(name)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{path}, args...)
	if os.Geteuid() == 0 {
		args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// stack is run.sh running in its own process group.
type stack struct {
	t       *testing.T
	out     syncBuffer
	exited  chan error
	pgid    int
	stopped bool
}

// startStack starts run.sh (from root, with the test's environment cleaned and env added). If the test
// does not stop it, a cleanup kills it and its cluster in dataDir; if the test failed, the cleanup shows
// its output and logs.
func startStack(t *testing.T, root, dataDir string, env ...string) *stack {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "deployments", "local", "run.sh"))
	cmd.Dir = root
	cmd.Env = append(cleanEnv(), env...)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "LIMEN_QUOTA_ADDR=") }) {
		// Never the default port: it would collide with a `make run` on this host.
		cmd.Env = append(cmd.Env, "LIMEN_QUOTA_ADDR="+addr(freePorts(t, 1)[0]))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second // do not hang on a descendant that keeps our output pipe open
	st := &stack{t: t, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = &st.out, &st.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	st.pgid = cmd.Process.Pid
	go func() { st.exited <- cmd.Wait() }()

	t.Cleanup(func() {
		if !st.stopped {
			_ = syscall.Kill(-st.pgid, syscall.SIGKILL)
			stopPostgres(t, filepath.Join(dataDir, "postgres"))
		}
		if t.Failed() {
			t.Logf("run.sh output:\n%s", st.out.String())
			logs, _ := filepath.Glob(filepath.Join(dataDir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("---- %s (last 3 KiB)\n%s", filepath.Base(l), tail(b, 3<<10))
			}
		}
	})
	return st
}

// stop sends SIGTERM to run.sh's process group: it must exit 0 within stopTimeout.
func (st *stack) stop() {
	st.t.Helper()
	if err := syscall.Kill(-st.pgid, syscall.SIGTERM); err != nil {
		st.t.Fatal(err)
	}
	select {
	case err := <-st.exited:
		st.stopped = true
		if err != nil {
			st.t.Errorf("run.sh after SIGTERM: %v; want exit 0", err)
		}
	case <-time.After(stopTimeout):
		st.t.Fatalf("run.sh still running %v after SIGTERM", stopTimeout)
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

// waitFor polls cond every 200 ms until it holds; it fails the test if run.sh exits (exited; nil:
// nothing watched) or time runs out.
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
	pgCtl, err := postgresTool("pg_ctl")
	if err != nil {
		t.Logf("cannot stop postgres in %s: %v", pgdata, err)
		return
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
