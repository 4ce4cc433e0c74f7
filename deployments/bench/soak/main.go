// Command soak runs the whole LIMEN stack under a steady, realistic load while it kills and restarts
// one part of it after another, then checks that nothing was lost, duplicated or left behind.
//
// It starts a private libvirtd (libs/testkit/libvirttest) and `make run`'s run.sh on free ports in a
// temporary $LIMEN_DATA_DIR, as the stack test does. run.sh stops everything when one of its children
// dies, so once the stack is up the soak takes each process's command line and environment from
// /proc, stops run.sh, and starts Postgres (with the options run.sh gave it), the broker and the
// services again itself, exactly as run.sh had started them; that is also how it restarts them.
//
// Load: SOAK_USERS users (registered, approved by the admin) each keep a /ws/vm-status socket open
// and create, start, stop, force-stop, restart, pause, resume, resize, attach and eject an ISO (made
// with genisoimage in LIMEN_ISO_DIR) and delete VMs with no OS (1 vCPU, 64 MiB, software emulation),
// at most SOAK_MAX_VMS at once. Requests that fail are repeated with backoff, as a careful client
// would; every failure a client sees is counted and classified, and whether a fault was under way.
//
// Faults, every SOAK_FAULT_EVERY in turn (SOAK_FAULTS): SIGKILL of a service and a restart with the
// same environment; SIGKILL of the broker (which keeps its log on disk) and a restart; a kill and
// restart of libvirtd (guests keep running); Postgres stopped (pg_ctl -m SOAK_PG_STOP) and started.
//
// After SOAK_DURATION the load stops, the stack gets SOAK_SETTLE to settle, and the checks run:
// no VM keeps a task; every VM in the database matches libvirt (domain limen-<uuid>, state, size,
// disk in the pool, CD-ROM) and no domain or disk is without a VM; each client's VMs are what it was
// told (201 and not deleted: there; deleted: gone); each socket's view (vm_list, vm_update, vm_delete,
// media_update applied in order) matches GET /api/vms and GET .../media for its user, and its seqs
// never went backwards or skipped; limen.vm.events holds every VM's events without a gap, ending in
// its current state or its deletion. It prints the counts and exits 1 on any mismatch, or when a
// service crashed or did not recover; 2 when it could not run.
//
//	SOAK_DURATION     10m   load and faults
//	SOAK_USERS        4
//	SOAK_MAX_VMS      6     VMs alive at once, all users together
//	SOAK_FAULT_EVERY  45s
//	SOAK_FAULTS       vm-service,postgres,broker,libvirtd,media-service,auth-service,gateway
//	SOAK_PG_STOP      fast  pg_ctl stop mode for the Postgres fault (immediate: a crash)
//	SOAK_SETTLE       60s   quiet period before the checks (each check then polls up to 30 s more)
//	SOAK_RESYNC       10s   LIMEN_RESYNC_INTERVAL of vm-service
//	SOAK_ORPHAN_GRACE 30s   LIMEN_ORPHAN_GRACE of vm-service
//	SOAK_LOG_LEVEL    info  the services' LOG_LEVEL
//	SOAK_OUT          /tmp/limen-soak-<time>  where the logs are kept
//	SOAK_KEEP         0     1: keep the data directory (database, broker log) too
//
// Run it as root from the repository root (deployments/bench/soak/soak.sh, `make soak`).
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type config struct {
	duration, faultEvery, settle time.Duration
	resync, orphanGrace          time.Duration
	readyWithin                  time.Duration
	users, maxVMs                int
	faults                       []string
	pgStopMode, logLevel, out    string
	keep                         bool
}

func loadConfig() (config, error) {
	cfg := config{readyWithin: 90 * time.Second}
	var errs []error
	dur := func(key string, def time.Duration) time.Duration {
		v := os.Getenv(key)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive Go duration", key, v))
		}
		return d
	}
	num := func(key string, def int) int {
		v := os.Getenv(key)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a positive number", key, v))
		}
		return n
	}
	str := func(key, def string) string {
		if v := os.Getenv(key); v != "" {
			return v
		}
		return def
	}
	cfg.duration = dur("SOAK_DURATION", 10*time.Minute)
	cfg.faultEvery = dur("SOAK_FAULT_EVERY", 45*time.Second)
	cfg.settle = dur("SOAK_SETTLE", 60*time.Second)
	cfg.resync = dur("SOAK_RESYNC", 10*time.Second)
	cfg.orphanGrace = dur("SOAK_ORPHAN_GRACE", 30*time.Second)
	cfg.users = num("SOAK_USERS", 4)
	cfg.maxVMs = num("SOAK_MAX_VMS", 6)
	cfg.pgStopMode = str("SOAK_PG_STOP", "fast")
	cfg.logLevel = str("SOAK_LOG_LEVEL", "info")
	cfg.out = str("SOAK_OUT", "/tmp/limen-soak-"+time.Now().Format("20060102-150405"))
	cfg.keep = os.Getenv("SOAK_KEEP") == "1"
	known := map[string]bool{"postgres": true, "broker": true, "libvirtd": true}
	for _, p := range procNames {
		known[p] = true
	}
	for _, f := range strings.Split(str("SOAK_FAULTS", "vm-service,postgres,broker,libvirtd,media-service,auth-service,gateway"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !known[f] || f == "limen-broker" {
			errs = append(errs, fmt.Errorf("SOAK_FAULTS: unknown %q (vm-service, media-service, auth-service, gateway, broker, libvirtd, postgres)", f))
		}
		cfg.faults = append(cfg.faults, f)
	}
	switch cfg.pgStopMode {
	case "smart", "fast", "immediate":
	default:
		errs = append(errs, fmt.Errorf("SOAK_PG_STOP=%q: want smart, fast or immediate", cfg.pgStopMode))
	}
	return cfg, errors.Join(errs...)
}

func main() {
	os.Exit(run())
}

func run() int {
	began := time.Now()
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		el := time.Since(began).Round(time.Second)
		fmt.Fprintf(os.Stderr, "soak +%02d:%02d %s\n", int(el.Minutes()), int(el.Seconds())%60, fmt.Sprintf(format, args...))
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "soak: run as root (a private libvirtd under its own user, Postgres as the postgres user)")
		return 2
	}
	// Ctrl-C or SIGTERM: stop the load, skip the checks, clean up.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	s, err := bootstrap(ctx, cfg, logf)
	if s != nil {
		defer func() {
			if err := s.copyLogs(cfg.out); err == nil {
				logf("logs kept in %s", cfg.out)
			}
			s.stop(cfg.keep)
			if cfg.keep {
				logf("data directory kept: %s", s.dataDir)
			}
		}()
	}
	if err != nil {
		logf("could not start the stack: %v", err)
		return 2
	}
	a := &api{base: "http://" + s.gateway, http: &http.Client{Timeout: 60 * time.Second}}

	// Users: registered, approved by the admin, logged in, each with its socket.
	adminToken, err := setupLogin(a, "admin", s.adminPassword)
	if err != nil {
		logf("%v", err)
		return 2
	}
	faults := &faultLog{}
	st := newStats(faults)
	notes := &events{}
	vmCap := &vmCap{max: cfg.maxVMs}
	var users []*user
	for i := range cfg.users {
		name, password := fmt.Sprintf("soak%d", i+1), fmt.Sprintf("soak-password-%d", i+1)
		reg := a.do("POST", "/api/auth/register", "", map[string]string{"username": name, "password": password})
		u, _ := reg.obj["user"].(map[string]any)
		if reg.status != http.StatusCreated || u == nil {
			logf("register %s: %s", name, reg)
			return 2
		}
		if r := a.do("PUT", fmt.Sprintf("/api/admin/users/%v/approve", u["id"]), adminToken, map[string]bool{"approved": true}); r.status != http.StatusOK {
			logf("approve %s: %s", name, r)
			return 2
		}
		usr := newUser(name, password, a, st, vmCap, notes, uint64(i+1)*7919)
		if !usr.login(ctx) {
			logf("login %s failed", name)
			return 2
		}
		usr.ws = newWSClient(usr, s.gateway)
		users = append(users, usr)
	}
	perUser := (cfg.maxVMs + cfg.users - 1) / cfg.users
	logf("load: %d users (at most %d VMs each, %d in all), faults every %s: %s; for %s",
		cfg.users, perUser, cfg.maxVMs, cfg.faultEvery, strings.Join(cfg.faults, ", "), cfg.duration)

	// The sockets stay open until the checks are done; the load and the faults stop after the duration.
	wsCtx, stopWS := context.WithCancel(context.Background())
	var wsWG sync.WaitGroup
	for _, u := range users {
		wsWG.Add(1)
		go func() { defer wsWG.Done(); u.ws.run(wsCtx) }()
	}
	defer func() { stopWS(); wsWG.Wait() }()
	load, stopLoad := context.WithTimeout(ctx, cfg.duration)
	defer stopLoad()
	var workers sync.WaitGroup
	for _, u := range users {
		workers.Add(1)
		go func() { defer workers.Done(); u.run(load, perUser) }()
	}
	workers.Add(1)
	go func() {
		defer workers.Done()
		tick := time.NewTicker(cfg.faultEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-load.Done():
				return
			case <-tick.C:
			}
			kind := cfg.faults[i%len(cfg.faults)]
			logf("fault %d: %s", i+1, kind)
			faults.begin(kind)
			f := s.inject(ctx, kind, cfg)
			faults.end(f)
			switch {
			case f.err != nil:
				logf("fault %d: %s: restart failed: %v", i+1, kind, f.err)
			case len(f.notReady) > 0:
				logf("fault %d: %s: back after %s, but not ready %s later: %s", i+1, kind,
					f.restored.Sub(f.start).Round(100*time.Millisecond), cfg.readyWithin, strings.Join(f.notReady, ", "))
			default:
				logf("fault %d: %s: back after %s, everything ready after %s", i+1, kind,
					f.restored.Sub(f.start).Round(100*time.Millisecond), f.ready.Sub(f.start).Round(100*time.Millisecond))
			}
		}
	}()
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	for load.Err() == nil {
		select {
		case <-load.Done():
		case <-progress.C:
			ops, failed, inFault, outside, _ := st.totals()
			logf("progress: %d operations (%d given up), client-visible errors %d during faults, %d outside; %d VMs alive",
				ops, failed, inFault, outside, vmCap.inUse())
		}
	}
	logf("load stopped; waiting for the requests in flight")
	workers.Wait()
	if ctx.Err() != nil {
		logf("interrupted")
		return 2
	}

	logf("quiet period: %s", cfg.settle)
	notReady := s.waitReady(ctx, cfg.readyWithin)
	sleepCtx(ctx, cfg.settle)
	if ctx.Err() != nil {
		return 2
	}
	c := &checker{s: s, api: a, adminToken: adminToken, users: users, logf: logf}
	if token, err := setupLogin(a, "admin", s.adminPassword); err == nil {
		c.adminToken = token
	}
	logf("checking")
	c.run(30 * time.Second)

	// ---- report -----------------------------------------------------------------------------------
	out := os.Stdout
	fmt.Fprintf(out, "\n==== LIMEN soak: %s of load, %d users, faults every %s (Postgres: %s), code %s ====\n",
		cfg.duration, cfg.users, cfg.faultEvery, cfg.pgStopMode, revision(s.root))
	ops, failed, inFault, outside, expected := st.totals()
	fl := faults.list()
	fmt.Fprintf(out, "operations: %d (%d given up after retries)\n", ops, failed)
	fmt.Fprintf(out, "faults injected: %d\n", len(fl))
	var failures []string
	for i, f := range fl {
		line := fmt.Sprintf("  %2d %-14s at %s: back after %s", i+1, f.kind, f.start.Sub(began).Round(time.Second),
			f.restored.Sub(f.start).Round(100*time.Millisecond))
		switch {
		case f.err != nil:
			line += fmt.Sprintf(", RESTART FAILED: %v", f.err)
			failures = append(failures, fmt.Sprintf("fault %d (%s): restart failed: %v", i+1, f.kind, f.err))
		case len(f.notReady) > 0:
			line += fmt.Sprintf(", NOT READY %s later: %s", cfg.readyWithin, strings.Join(f.notReady, ", "))
			failures = append(failures, fmt.Sprintf("fault %d (%s): %s not ready %s after", i+1, f.kind, strings.Join(f.notReady, ", "), cfg.readyWithin))
		default:
			line += fmt.Sprintf(", all ready after %s", f.ready.Sub(f.start).Round(100*time.Millisecond))
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "client-visible errors: %d during faults, %d outside faults; expected answers: %d\n", inFault, outside, expected)
	st.print(out)
	fmt.Fprintln(out, "live status sockets:")
	for _, u := range users {
		u.ws.mu.Lock()
		fmt.Fprintf(out, "  %s: %d connections; messages %v; ended: %v\n", u.name, u.ws.conn, u.ws.messages, u.ws.closes)
		u.ws.mu.Unlock()
	}
	for _, n := range s.crashes.list() {
		failures = append(failures, "crash: "+n)
	}
	if len(notReady) > 0 {
		failures = append(failures, "not ready when the load stopped: "+strings.Join(notReady, ", "))
	}
	if down := s.readiness(); len(down) > 0 {
		failures = append(failures, "not ready at the end: "+strings.Join(down, ", "))
	}
	if n := notes.list(); len(n) > 0 {
		fmt.Fprintln(out, "observed during the load:")
		for _, line := range n {
			fmt.Fprintf(out, "  %s\n", line)
		}
	}
	c.print(out)
	fmt.Fprintf(out, "service failures: %d\n", len(failures))
	for _, f := range failures {
		fmt.Fprintf(out, "  %s\n", f)
	}
	if c.count() > 0 || len(failures) > 0 {
		fmt.Fprintln(out, "RESULT: FAIL")
		return 1
	}
	fmt.Fprintln(out, "RESULT: PASS")
	return 0
}

// revision names the code under test: the commit, and whether the tree had changes on top.
func revision(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	return strings.TrimSpace(string(out))
}

func setupLogin(a *api, username, password string) (string, error) {
	var r reply
	for range 10 {
		r = a.do("POST", "/api/auth/login", "", map[string]string{"username": username, "password": password})
		if token, _ := r.obj["token"].(string); r.status == http.StatusOK && token != "" {
			return token, nil
		}
		time.Sleep(time.Second)
	}
	return "", fmt.Errorf("login %s: %s", username, r)
}
