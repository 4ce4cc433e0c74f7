package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"limen/libs/testkit/libvirttest"
)

// The processes run.sh starts, in its start order; the soak restarts them the way run.sh started them.
var procNames = []string{"limen-broker", "auth-service", "vm-service", "media-service", "gateway"}

// stack is the local stack: bootstrapped by run.sh, then run by the soak itself (run.sh stops
// everything when one of its children dies, so it cannot stay in charge while services are killed).
type stack struct {
	root, dataDir string
	libvirtd      *libvirttest.Daemon
	isoDir        string
	poolDir       string

	pgdata, pgArgs string // the cluster and the server options run.sh started it with
	procs          map[string]*proc
	gateway        string // the gateway's address
	kafka          string
	adminPassword  string

	crashes *events // processes that ended without being told to
	logf    func(format string, args ...any)

	mu       sync.Mutex
	stopping bool
}

// proc is one process started with the argv and environment run.sh gave it.
type proc struct {
	s     *stack
	name  string
	argv  []string
	env   []string
	ready func() bool // what run.sh waits for: /readyz (the gateway: its internal listener), the broker's port

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	intended bool // the soak ended it
}

// bootstrap starts a private libvirtd and run.sh on free ports in a fresh data directory, takes each
// process's command line and environment from /proc once the stack is up, stops run.sh (and with it
// everything it started), and starts Postgres, the broker and the services again itself.
func bootstrap(ctx context.Context, cfg config, logf func(string, ...any)) (s *stack, err error) {
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "deployments", "local", "run.sh")); err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	dataDir, err := os.MkdirTemp("", "limen-soak-")
	if err != nil {
		return nil, err
	}
	// Postgres runs as its own user and must reach $LIMEN_DATA_DIR/postgres.
	if err := os.Chmod(dataDir, 0o755); err != nil {
		return nil, err
	}
	s = &stack{root: root, dataDir: dataDir, procs: map[string]*proc{}, crashes: &events{}, logf: logf}
	defer func() {
		if err != nil {
			s.stop(true)
		}
	}()
	logf("data directory %s", dataDir)
	if s.libvirtd, err = libvirttest.Start(ctx); err != nil {
		return s, err
	}
	s.isoDir = filepath.Join(s.libvirtd.ImageDir(), "isos")
	s.poolDir = filepath.Join(s.libvirtd.ImageDir(), "vms")
	if err := makeISO(filepath.Join(s.isoDir, isoName)); err != nil {
		return s, err
	}

	ports, err := freePorts(7)
	if err != nil {
		return s, err
	}
	addr := func(i int) string { return "127.0.0.1:" + ports[i] }
	s.gateway, s.kafka = addr(3), addr(1)
	env := append(cleanEnv(),
		"LIMEN_DATA_DIR="+dataDir,
		"LIMEN_PG_PORT="+ports[0],
		"LIMEN_KAFKA_ADDR="+s.kafka,
		// A broker that keeps its log on disk, as Kafka does: a restart loses nothing.
		"LIMEN_KAFKA_DATA_DIR="+filepath.Join(dataDir, "broker"),
		"LIMEN_AUTH_ADDR="+addr(2),
		"LIMEN_GATEWAY_ADDR="+s.gateway,
		"LIMEN_VM_ADDR="+addr(4),
		"LIMEN_MEDIA_ADDR="+addr(5),
		"LIMEN_METRICS_ADDR="+addr(6),
		"LIMEN_START_LIBVIRTD=0",
		"LIBVIRT_URI="+s.libvirtd.URI(),
		"LIBVIRT_SOCKET="+s.libvirtd.SocketPath(),
		"LIMEN_STORAGE_POOL_PATH="+s.poolDir,
		"LIMEN_ISO_DIR="+s.isoDir,
		"LIMEN_DOMAIN_TYPE=qemu", // software emulation: no KVM probe, the same on every host
		"LIMEN_VM_STOP_TIMEOUT=2s",
		// Short enough that the quiet period sees the resync repair what a fault left behind.
		"LIMEN_RESYNC_INTERVAL="+cfg.resync.String(),
		"LIMEN_ORPHAN_GRACE="+cfg.orphanGrace.String(),
		"LIMEN_LOG_TEE=0",
		"LIMEN_HEALTH_TIMEOUT=120",
		"LOG_LEVEL="+cfg.logLevel,
	)
	if err := s.runBootstrap(ctx, env); err != nil {
		return s, err
	}
	pw, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
	if err != nil {
		return s, err
	}
	s.adminPassword = strings.TrimSpace(string(pw))

	logf("starting postgres, the broker and the services as run.sh did")
	if err := s.pgStart(); err != nil {
		return s, err
	}
	for _, name := range procNames {
		if err := s.procs[name].startAndWait(ctx, 60*time.Second); err != nil {
			return s, err
		}
	}
	return s, nil
}

// runBootstrap runs run.sh until it prints its banner, records what it started, and stops it.
func (s *stack) runBootstrap(ctx context.Context, env []string) error {
	out, err := os.Create(filepath.Join(s.dataDir, "run.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("bash", filepath.Join(s.root, "deployments", "local", "run.sh"))
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = s.root, env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.logf("run.sh: building and starting the stack (log: %s)", out.Name())
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	runLog := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	deadline := time.After(15 * time.Minute) // a cold build on a small machine
	for !strings.Contains(runLog(), "LIMEN is up") {
		select {
		case err := <-exited:
			return fmt.Errorf("run.sh exited (%v) before the stack was up:\n%s", err, tailString(runLog(), 3000))
		case <-deadline:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("run.sh: the stack was not up within 15 minutes:\n%s", tailString(runLog(), 3000))
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}

	// What run.sh started: each binary from $LIMEN_DATA_DIR/bin, its arguments and environment.
	for _, name := range procNames {
		bin := filepath.Join(s.dataDir, "bin", name)
		pid, err := pidOf(bin)
		if err != nil {
			return err
		}
		argv, err := nulList(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return err
		}
		environ, err := nulList(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			return err
		}
		argv[0] = bin
		p := &proc{s: s, name: name, argv: argv, env: environ}
		switch name {
		case "limen-broker":
			p.ready = func() bool { return dialOK(s.kafka) }
		case "gateway":
			p.ready = func() bool { return httpOK("http://" + envOf(environ, "LIMEN_METRICS_ADDR") + "/readyz") }
		default:
			p.ready = func() bool { return httpOK("http://" + envOf(environ, "LISTEN_ADDR") + "/readyz") }
		}
		s.procs[name] = p
	}
	s.pgdata = filepath.Join(s.dataDir, "postgres")
	opts, err := os.ReadFile(filepath.Join(s.pgdata, "postmaster.opts"))
	if err != nil {
		return err
	}
	// "/usr/lib/postgresql/N/bin/postgres" "-D" "..." "-p" "..." ...: everything after the program.
	_, s.pgArgs, _ = strings.Cut(strings.TrimSpace(string(opts)), " ")

	s.logf("stack up; stopping run.sh to run its processes directly")
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("run.sh after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return errors.New("run.sh did not stop within 60 s of SIGTERM")
	}
	return nil
}

func (p *proc) start() error {
	logFile, err := os.OpenFile(filepath.Join(p.s.dataDir, "logs", p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = p.s.root, p.env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.intended = cmd, done, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		close(done)
		p.mu.Lock()
		intended := p.intended
		p.mu.Unlock()
		if intended || p.s.isStopping() {
			return
		}
		// Nobody asked it to end: a crash. run.sh would stop the whole stack; the soak records it and
		// starts the process again, so the run goes on.
		p.s.crashes.add(fmt.Sprintf("%s (pid %d) exited on its own: %v", p.name, cmd.Process.Pid, err))
		p.s.logf("CRASH: %s exited on its own (%v); starting it again", p.name, err)
		time.Sleep(time.Second)
		if !p.s.isStopping() {
			if err := p.start(); err != nil {
				p.s.logf("restart of %s failed: %v", p.name, err)
			}
		}
	}()
	return nil
}

// startAndWait starts the process and waits until it is ready, as run.sh does.
func (p *proc) startAndWait(ctx context.Context, timeout time.Duration) error {
	if err := p.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for !p.ready() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready %s after its start", p.name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// signal sends sig and waits up to wait for the process to end (SIGKILL after that).
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.intended = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (s *stack) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// readiness lists the processes whose readiness check fails (empty: all ready).
func (s *stack) readiness() []string {
	var down []string
	for _, name := range procNames {
		if p := s.procs[name]; p != nil && !p.ready() {
			down = append(down, name)
		}
	}
	return down
}

// waitReady waits until every process is ready; it returns those still not ready at the timeout.
func (s *stack) waitReady(ctx context.Context, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		down := s.readiness()
		if len(down) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return down
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pgCtl runs pg_ctl on the cluster, as the postgres user when we are root (as run.sh does).
func (s *stack) pgCtl(args ...string) error {
	path, err := postgresTool("pg_ctl")
	if err != nil {
		return err
	}
	argv := append([]string{path, "-D", s.pgdata}, args...)
	if os.Geteuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (s *stack) pgStart() error {
	return s.pgCtl("-l", filepath.Join(s.dataDir, "logs", "postgres.log"), "-w", "-t", "60", "-o", s.pgArgs, "start")
}

func (s *stack) pgStop(mode string) error { return s.pgCtl("-m", mode, "-w", "-t", "60", "stop") }

// fault is one injected failure and how the stack came back from it.
type fault struct {
	kind            string
	start, restored time.Time // restored: the component runs again
	ready           time.Time // every process ready again (zero: not within the limit)
	notReady        []string
	err             error
}

// inject kills (or stops) one component, keeps it down for a moment and starts it again, then waits
// until every process is ready.
func (s *stack) inject(ctx context.Context, kind string, cfg config) fault {
	f := fault{kind: kind, start: time.Now()}
	down := 2 * time.Second
	switch kind {
	case "postgres":
		if f.err = s.pgStop(cfg.pgStopMode); f.err == nil {
			sleepCtx(ctx, 3*time.Second)
			f.err = s.pgStart()
		}
	case "libvirtd":
		_ = s.libvirtd.Kill()
		sleepCtx(ctx, down)
		f.err = s.libvirtd.Restart(context.Background())
	case "broker":
		p := s.procs["limen-broker"]
		p.signal(syscall.SIGKILL, 10*time.Second)
		sleepCtx(ctx, down)
		f.err = p.startAndWait(context.Background(), 30*time.Second)
	default:
		p := s.procs[kind]
		if p == nil {
			f.err = fmt.Errorf("unknown fault %q", kind)
			return f
		}
		p.signal(syscall.SIGKILL, 10*time.Second)
		sleepCtx(ctx, down)
		f.err = p.start()
	}
	f.restored = time.Now()
	if f.notReady = s.waitReady(context.Background(), cfg.readyWithin); len(f.notReady) == 0 {
		f.ready = time.Now()
	}
	return f
}

// stop ends everything: the services (SIGTERM, as run.sh does), Postgres, the private libvirtd with
// its guests; the data directory goes unless keep.
func (s *stack) stop(keep bool) {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	for i := len(procNames) - 1; i >= 0; i-- {
		if p := s.procs[procNames[i]]; p != nil {
			p.signal(syscall.SIGTERM, 25*time.Second)
		}
	}
	if s.pgdata != "" {
		if _, err := os.Stat(filepath.Join(s.pgdata, "postmaster.pid")); err == nil {
			if err := s.pgStop("fast"); err != nil {
				_ = s.pgStop("immediate")
			}
		}
	}
	if s.libvirtd != nil {
		if err := s.libvirtd.Stop(); err != nil {
			s.logf("stopping libvirtd: %v", err)
		}
	}
	if !keep && s.dataDir != "" {
		_ = os.RemoveAll(s.dataDir)
	}
}

// copyLogs keeps the logs of the run in dir.
func (s *stack) copyLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logs, _ := filepath.Glob(filepath.Join(s.dataDir, "logs", "*.log"))
	logs = append(logs, filepath.Join(s.dataDir, "run.log"))
	if s.libvirtd != nil {
		logs = append(logs, filepath.Join(filepath.Dir(s.libvirtd.ImageDir()), "libvirtd.log"))
	}
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ---- helpers ------------------------------------------------------------------------------------

const isoName = "soak.iso"

// makeISO writes a small ISO image at path, readable by the private libvirtd's user.
func makeISO(path string) error {
	src, err := os.MkdirTemp("", "limen-soak-iso-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte("LIMEN soak"), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("genisoimage", "-quiet", "-o", path, "-V", "SOAK", "-J", "-r", src).CombinedOutput(); err != nil {
		return fmt.Errorf("genisoimage: %v: %s", err, out)
	}
	return os.Chmod(path, 0o644)
}

func freePorts(n int) ([]string, error) {
	var ports []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, p)
	}
	return ports, nil
}

// cleanEnv is our environment without anything that would point the stack elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LIMEN_"), strings.HasSuffix(k, "_SERVICE_URL"), strings.HasPrefix(k, "LIBVIRT_"),
			strings.HasPrefix(k, "SOAK_"),
			k == "DATABASE_URL", k == "KAFKA_BROKERS", k == "LISTEN_ADDR", k == "OTEL_EXPORTER_OTLP_ENDPOINT":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// pidOf finds the live process running the program at bin.
func pidOf(bin string) (int, error) {
	entries, _ := os.ReadDir("/proc")
	var found []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == bin {
			found = append(found, pid)
		}
	}
	sort.Ints(found)
	if len(found) != 1 {
		return 0, fmt.Errorf("%d processes run %s, want 1", len(found), bin)
	}
	return found[0], nil
}

func nulList(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

func envOf(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

func httpOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// postgresTool is the path of a PostgreSQL program: on PATH, else the newest Debian install.
func postgresTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	major := func(p string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p)))); return v }
	sort.Slice(matches, func(i, j int) bool { return major(matches[i]) < major(matches[j]) })
	if len(matches) == 0 {
		return "", fmt.Errorf("%s not found (deployments/local/ensure-deps.sh installs PostgreSQL)", name)
	}
	return matches[len(matches)-1], nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// events is a concurrency-safe list of notes.
type events struct {
	mu    sync.Mutex
	notes []string
}

func (e *events) add(note string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, note)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.notes...)
}
