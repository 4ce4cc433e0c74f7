// Command wsbench measures the gateway's live status socket at scale (deployments/bench/ws.sh runs
// it). It stands in for auth-service's JWKS and vm-service's VM list itself, and for each stage
// starts a fresh gateway (the binary given) against the broker given, then:
//
//  1. opens the stage's sockets (/ws/vm-status), spread over -users users (each owning -vms VMs)
//     and -admin-sockets sockets of -admins admins asking for everyone's VMs (?all=true), and waits
//     for each socket's first list;
//  2. reads the gateway's RSS, Go heap and stacks, and goroutines (its /metrics) before and after,
//     per idle socket;
//  3. publishes VM updates to the broker at -rate events/s for -duration, each carrying the time it
//     was produced (data.sent_ns), and measures the produce → client latency of every message at the
//     client; -stalled admin sockets stop reading after their list (with a small receive buffer), as
//     clients that cannot keep up;
//  4. counts, once the clients have caught up (or -drain passed), the messages dropped for the
//     clients that kept up (every one of them must get every event it may see) and the stalled
//     clients the gateway disconnected.
//
// One line per stage is printed (see header()).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/testkit/jwttest"
)

type options struct {
	gatewayBin, broker      string
	brokerPID               int
	stages                  []int
	users, vms              int
	admins, adminSockets    int
	stalled                 int
	rate                    int
	duration, drain, settle time.Duration
	gcWait                  time.Duration
	dialers                 int
	sendQueue, pingInterval string
	// heapDir: where the gateway (a TestServeForProfile wrapper) writes its heap at idle, per stage.
	heapDir string
	// cpuProfile: where this process (the clients and the publisher) writes its CPU profile.
	cpuProfile string
}

func main() {
	var o options
	var stages string
	flag.StringVar(&o.gatewayBin, "gateway", "", "the gateway binary")
	flag.StringVar(&o.broker, "broker", "", "host:port of the Kafka broker")
	flag.IntVar(&o.brokerPID, "broker-pid", 0, "the broker's process, for its CPU time (0: not reported)")
	flag.StringVar(&stages, "sockets", "1000,5000,10000", "sockets per stage, comma separated")
	flag.IntVar(&o.users, "users", 100, "users holding the sockets")
	flag.IntVar(&o.vms, "vms", 10, "VMs each user owns")
	flag.IntVar(&o.admins, "admins", 5, "admins, whose sockets ask for everyone's VMs")
	flag.IntVar(&o.adminSockets, "admin-sockets", 10, "admin sockets (part of each stage's sockets)")
	flag.IntVar(&o.stalled, "stalled", 5, "admin sockets that stop reading (part of each stage's sockets)")
	flag.IntVar(&o.rate, "rate", 1000, "events per second")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long events are published")
	flag.DurationVar(&o.drain, "drain", 15*time.Second, "how long the clients may take to catch up")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "pause before an idle reading")
	flag.DurationVar(&o.gcWait, "gc-wait", 130*time.Second, "how long the idle reading waits for the gateway's next garbage collection")
	flag.IntVar(&o.dialers, "dialers", 64, "sockets opened at once")
	flag.StringVar(&o.sendQueue, "send-queue", "", "LIMEN_WS_SEND_QUEUE for the gateway (empty: its default)")
	flag.StringVar(&o.pingInterval, "ping", "", "LIMEN_WS_PING_INTERVAL for the gateway (empty: its default)")
	flag.StringVar(&o.heapDir, "heap-dir", "", "have the gateway write its live heap at idle to DIR/gateway-heap-<sockets>.pprof "+
		"(LIMEN_BENCH_HEAP and SIGUSR1: -gateway must run gateway/internal/service's TestServeForProfile)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the CPU profile of the clients and the publisher to this file")
	flag.Parse()
	for s := range strings.SplitSeq(stages, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= o.adminSockets {
			log.Fatalf("-sockets: %q is no count above -admin-sockets", s)
		}
		o.stages = append(o.stages, n)
	}
	if o.gatewayBin == "" || o.broker == "" || o.stalled > o.adminSockets {
		log.Fatal("-gateway and -broker are required, and -stalled is at most -admin-sockets")
	}
	if o.cpuProfile != "" {
		out, err := os.Create(o.cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	f, err := newFixture(o)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(header())
	for _, n := range o.stages {
		r, err := f.stage(n)
		if err != nil {
			log.Fatalf("%d sockets: %v", n, err)
		}
		fmt.Println(r)
	}
}

// fixture is what every stage shares: the JWKS and VM list stand-ins, the users' tokens, the broker.
type fixture struct {
	o               options
	jwks, vmService string
	tokens          map[int64]string // by user id; admins follow the users
	producer        *kgo.Client
}

func (f *fixture) admin(id int64) bool { return id > int64(f.o.users) }

func newFixture(o options) (*fixture, error) {
	issuer, err := jwttest.Generate()
	if err != nil {
		return nil, err
	}
	f := &fixture{o: o, tokens: map[int64]string{}}
	for id := int64(1); id <= int64(o.users+o.admins); id++ {
		role := authn.RoleUser
		if f.admin(id) {
			role = authn.RoleAdmin
		}
		claims := jwttest.Claims(id, role)
		claims.ExpiresAt.Time = time.Now().Add(24 * time.Hour)
		if f.tokens[id], err = issuer.SignClaims(claims); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/api/auth/jwks", issuer.JWKSHandler())
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"status":"ok","checks":{"db":"connected"}}`)
	})
	mux.HandleFunc("GET /api/vms", f.listVMs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { log.Fatal(http.Serve(ln, mux)) }()
	f.jwks, f.vmService = "http://"+ln.Addr().String(), "http://"+ln.Addr().String()
	f.producer, err = kgo.NewClient(kgo.SeedBrokers(o.broker), kgo.ProducerLinger(time.Millisecond),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	return f, err
}

// vm is a VM as the stand-in lists it and the events carry it.
func (f *fixture) vm(owner int64, i int) []byte {
	id := (owner-1)*int64(f.o.vms) + int64(i) + 1
	return fmt.Appendf(nil, `{"id":%d,"uuid":"%s","name":"vm-%d","owner_id":%d,"status":"Running"}`, id, f.uuid(owner, i), id, owner)
}

func (f *fixture) uuid(owner int64, i int) string {
	return fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", owner, i)
}

// listVMs answers GET /api/vms as vm-service does: the caller's VMs, everyone's for an admin asking
// for all. The token is known by heart (the gateway checked it).
func (f *fixture) listVMs(w http.ResponseWriter, r *http.Request) {
	token := authn.BearerToken(r.Header.Get("Authorization"))
	var who int64
	for id, t := range f.tokens {
		if t == token {
			who = id
		}
	}
	owners := []int64{who}
	if f.admin(who) && r.URL.Query().Get("all") == "true" {
		owners = owners[:0]
		for id := int64(1); id <= int64(f.o.users); id++ {
			owners = append(owners, id)
		}
	}
	out := []byte{'['}
	for _, owner := range owners {
		for i := 0; i < f.o.vms && !f.admin(owner); i++ {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, f.vm(owner, i)...)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(out, ']'))
}

// gateway is one stage's gateway process.
type gateway struct {
	cmd           *exec.Cmd
	addr, metrics string
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (f *fixture) startGateway(sockets int) (*gateway, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(f.o.gatewayBin)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR="+addr, "LIMEN_METRICS_ADDR="+metrics, "LOG_LEVEL=warn",
		"LIMEN_JWKS_URL="+f.jwks+"/api/auth/jwks", "AUTH_SERVICE_URL="+f.jwks, "VM_SERVICE_URL="+f.vmService,
		"KAFKA_BROKERS="+f.o.broker, "LIMEN_WS_MAX_PER_USER="+strconv.Itoa(sockets), "OTEL_EXPORTER_OTLP_ENDPOINT=")
	if f.o.sendQueue != "" {
		cmd.Env = append(cmd.Env, "LIMEN_WS_SEND_QUEUE="+f.o.sendQueue)
	}
	if f.o.pingInterval != "" {
		cmd.Env = append(cmd.Env, "LIMEN_WS_PING_INTERVAL="+f.o.pingInterval)
	}
	if f.o.heapDir != "" {
		cmd.Env = append(cmd.Env, "LIMEN_BENCH_HEAP="+f.heapFile(sockets))
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, addr: addr, metrics: metrics}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + metrics + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, errors.New("the gateway did not get ready")
		}
	}
}

func (f *fixture) heapFile(sockets int) string {
	return filepath.Join(f.o.heapDir, fmt.Sprintf("gateway-heap-%d.pprof", sockets))
}

// writeHeap has the gateway write its live heap to file, and waits until it has: events must not
// be published while it does.
func (g *gateway) writeHeap(file string) error {
	_ = os.Remove(file)
	if err := g.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return err
	}
	var size int64 = -1
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		fi, err := os.Stat(file)
		if err == nil && fi.Size() > 0 && fi.Size() == size {
			return nil
		}
		if err == nil {
			size = fi.Size()
		}
	}
	return errors.New("the gateway wrote no heap profile")
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	_ = g.cmd.Wait()
}

// reading is the gateway's memory and goroutines at one moment.
type reading struct {
	rss, heap, stacks, goroutines float64
	cpu                           time.Duration
	// sys is the part of cpu spent in the kernel; writes counts the write calls so far.
	sys    time.Duration
	writes int64
	// gcs counts the garbage collections so far.
	gcs float64
}

func (g *gateway) read() (reading, error) {
	var r reading
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return r, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 64)
			r.rss = v * 1024
		}
	}
	if r.cpu, r.sys, err = cpuTimes(g.cmd.Process.Pid); err != nil {
		return r, err
	}
	if r.writes, err = writeCalls(g.cmd.Process.Pid); err != nil {
		return r, err
	}
	resp, err := http.Get("http://" + g.metrics + "/metrics")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			r.goroutines = v
		case "go_memstats_heap_inuse_bytes":
			r.heap = v
		case "go_memstats_stack_inuse_bytes":
			r.stacks = v
		case "go_gc_duration_seconds_count":
			r.gcs = v
		}
	}
	return r, sc.Err()
}

// cpuTime is the CPU time (user and system) process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	cpu, _, err := cpuTimes(pid)
	return cpu, err
}

// cpuTimes is the CPU time process pid has used, and the part of it in the kernel.
func cpuTimes(pid int) (cpu, sys time.Duration, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, time.Duration(stime) * tick, nil
}

// writeCalls counts the write system calls process pid has made (/proc/PID/io's syscw).
func writeCalls(pid int) (int64, error) {
	stats, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(stats), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no syscw in /proc/PID/io")
}

// client is one socket.
type client struct {
	user    int64
	all     bool
	stalled bool
	conn    *websocket.Conn
	// got counts the vm_update messages received; latencies their produce → receipt times.
	got       atomic.Int64
	latencies []time.Duration
	// closed is why the socket ended before the stage did (nil: it did not).
	closed error
	done   chan struct{}
}

func (f *fixture) dial(g *gateway, c *client) error {
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	if c.stalled {
		// A small receive buffer: the gateway's writes back up soon, as to a client on a slow link.
		dialer.NetDial = func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
				var err error
				_ = raw.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
				return err
			}}
			return d.Dial(network, addr)
		}
	}
	url := "ws://" + g.addr + "/ws/vm-status?token=" + f.tokens[c.user]
	if c.all {
		url += "&all=true"
	}
	conn, resp, err := dialer.Dial(url, nil)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("%w (%d)", err, resp.StatusCode)
		}
		return err
	}
	var first struct{ Type string }
	if err := conn.ReadJSON(&first); err != nil || first.Type != "vm_list" {
		conn.Close()
		return fmt.Errorf("first message %q: %v", first.Type, err)
	}
	c.conn = conn
	return nil
}

// read takes every message until the socket ends, timing the updates.
func (c *client) read() {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			c.closed = err
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			c.closed = err
			return
		}
		now := time.Now().UnixNano()
		msg := buf.Bytes()
		if !bytes.HasPrefix(msg, []byte(`{"type":"vm_update"`)) {
			continue
		}
		i := bytes.Index(msg, []byte(`"sent_ns":`))
		if i < 0 {
			continue
		}
		digits := msg[i+len(`"sent_ns":`):]
		end := bytes.IndexAny(digits, ",}")
		sent, err := strconv.ParseInt(string(digits[:end]), 10, 64)
		if err != nil {
			continue
		}
		c.latencies = append(c.latencies, time.Duration(now-sent))
		c.got.Add(1)
	}
}

// result is one stage's line.
type result struct {
	sockets                            int
	idle                               reading // per socket, over the gateway before the sockets
	events                             int
	expected, delivered, dropped       int64
	p50, p99, max                      time.Duration
	keptUpClosed, stalled, stalledGone int
	// cores busy while publishing and draining: the gateway, this process (the clients and the
	// publisher), the broker
	cpu, clientCPU, brokerCPU float64
	publishLag                time.Duration
}

func header() string {
	return fmt.Sprintf("%7s %9s %9s %10s %6s %9s %9s %8s %8s %8s %7s %8s %9s %9s",
		"sockets", "RSS/sock", "heap+stk", "goroutine", "events", "expected", "delivered", "p50", "p99", "max",
		"dropped", "closed", "slow cut", "cores: gateway/clients/broker")
}

func (r result) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("%7d %7.1fKB %7.1fKB %10.2f %6d %9d %9d %8s %8s %8s %7d %8d %9s %9.2f/%.2f/%.2f",
		r.sockets, r.idle.rss/1024, (r.idle.heap+r.idle.stacks)/1024, r.idle.goroutines, r.events, r.expected, r.delivered,
		ms(r.p50), ms(r.p99), ms(r.max), r.dropped, r.keptUpClosed, fmt.Sprintf("%d/%d", r.stalledGone, r.stalled), r.cpu, r.clientCPU, r.brokerCPU)
}

func (f *fixture) stage(n int) (result, error) {
	res := result{sockets: n, stalled: f.o.stalled}
	g, err := f.startGateway(n)
	if err != nil {
		return res, err
	}
	defer g.stop()
	if err := f.warmUp(g); err != nil {
		return res, err
	}
	time.Sleep(f.o.settle)
	before, err := g.read()
	if err != nil {
		return res, err
	}

	clients := make([]*client, n)
	for i := range clients {
		c := &client{done: make(chan struct{})}
		if i < f.o.adminSockets {
			c.user, c.all, c.stalled = int64(f.o.users+1+i%f.o.admins), true, i < f.o.stalled
		} else {
			c.user = int64(1 + i%f.o.users)
		}
		clients[i] = c
	}
	errs := make(chan error, n)
	sem := make(chan struct{}, f.o.dialers)
	var wg sync.WaitGroup
	for _, c := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f.dial(g, c); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return res, fmt.Errorf("opening sockets: %w", err)
	}
	defer func() {
		for _, c := range clients {
			_ = c.conn.Close()
		}
	}()
	for _, c := range clients {
		if !c.stalled {
			go c.read()
		}
	}
	time.Sleep(f.o.settle)
	idle, err := g.read()
	if err != nil {
		return res, err
	}
	// The heap then holds what opening the sockets left behind too, until the next collection (an
	// idle gateway has one every two minutes).
	for opened, deadline := idle.gcs, time.Now().Add(f.o.gcWait); idle.gcs == opened && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		if idle, err = g.read(); err != nil {
			return res, err
		}
	}
	if f.o.heapDir != "" {
		if err := g.writeHeap(f.heapFile(n)); err != nil {
			return res, err
		}
	}
	per := func(a, b float64) float64 { return (a - b) / float64(n) }
	res.idle = reading{rss: per(idle.rss, before.rss), heap: per(idle.heap, before.heap),
		stacks: per(idle.stacks, before.stacks), goroutines: per(idle.goroutines, before.goroutines)}
	log.Printf("%d sockets, per idle socket: Go heap %.1f KB, stacks %.1f KB", n, res.idle.heap/1024, res.idle.stacks/1024)

	clientBefore, err := cpuTime(os.Getpid())
	if err != nil {
		return res, err
	}
	brokerBefore, _ := cpuTime(f.o.brokerPID)
	perUser, err := f.publish(&res)
	if err != nil {
		return res, err
	}
	publishEnd := time.Now()
	// What each client may see: its user's events, or every event.
	expect := func(c *client) int64 {
		if c.all {
			return int64(res.events)
		}
		return perUser[c.user]
	}
	for deadline := time.Now().Add(f.o.drain); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		behind := false
		for _, c := range clients {
			if !c.stalled && c.got.Load() < expect(c) && !isDone(c.done) {
				behind = true
				break
			}
		}
		if !behind {
			break
		}
	}
	after, err := g.read()
	if err != nil {
		return res, err
	}
	window := time.Since(publishEnd.Add(-f.o.duration)).Seconds()
	clientAfter, err := cpuTime(os.Getpid())
	if err != nil {
		return res, err
	}
	brokerAfter, _ := cpuTime(f.o.brokerPID)
	res.cpu, res.clientCPU = (after.cpu-idle.cpu).Seconds()/window, (clientAfter-clientBefore).Seconds()/window
	res.brokerCPU = (brokerAfter - brokerBefore).Seconds() / window
	defer func() {
		log.Printf("%d sockets, while publishing: gateway %.0f %% of its CPU in the kernel, %.2f write calls per message delivered",
			n, 100*float64(after.sys-idle.sys)/float64(after.cpu-idle.cpu), float64(after.writes-idle.writes)/float64(res.delivered))
	}()

	// The stalled clients read what reached them: the gateway should have closed them, as too slow.
	var latencies []time.Duration
	for _, c := range clients {
		if c.stalled {
			_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			go c.read()
			<-c.done
			var ce *websocket.CloseError
			if errors.As(c.closed, &ce) && ce.Code == websocket.ClosePolicyViolation || c.got.Load() < expect(c) {
				res.stalledGone++
			}
			continue
		}
		res.expected += expect(c)
		got := c.got.Load()
		res.delivered += got
		if isDone(c.done) {
			res.keptUpClosed++
			log.Printf("a client that kept up was closed: %v", c.closed)
		} else if got < expect(c) {
			res.dropped += expect(c) - got
		}
	}
	for _, c := range clients {
		_ = c.conn.Close()
	}
	for _, c := range clients {
		if !c.stalled {
			<-c.done
			latencies = append(latencies, c.latencies...)
		}
	}
	slices.Sort(latencies)
	if len(latencies) > 0 {
		res.p50, res.p99, res.max = latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1]
	}
	return res, nil
}

// warmUp waits until the gateway's consumer reads the events topic (it starts at the end of each
// partition once it has listed them): until an admin's socket gets an event of a VM of its own.
func (f *fixture) warmUp(g *gateway) error {
	admin := int64(f.o.users + 1)
	c := &client{user: admin, all: true, done: make(chan struct{})}
	if err := f.dial(g, c); err != nil {
		return err
	}
	defer c.conn.Close()
	got := make(chan struct{})
	go func() {
		for {
			_, msg, err := c.conn.ReadMessage()
			if err != nil {
				return
			}
			if bytes.Contains(msg, []byte(`"vm_update"`)) {
				close(got)
				return
			}
		}
	}()
	uuid := f.uuid(admin, 0)
	for seq := int64(1); seq <= 100; seq++ {
		value, err := json.Marshal(map[string]any{"specversion": "1.0", "id": fmt.Sprintf("warm-up-%d", seq), "source": "wsbench",
			"type": contract.TypeVMUpdated, "subject": uuid, contract.ExtensionOwnerID: admin, contract.ExtensionSequence: seq,
			"datacontenttype": "application/json", "data": json.RawMessage(f.vm(admin, 0))})
		if err != nil {
			return err
		}
		if err := f.producer.ProduceSync(context.Background(), &kgo.Record{Topic: contract.TopicVMEvents, Key: []byte(uuid), Value: value}).FirstErr(); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("no event reached the gateway's sockets")
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// publish produces -rate VM updates a second for -duration, in 10 ms batches on a fixed schedule
// (a late batch goes at once, so the rate holds), over every user's VMs in turn, and returns how many
// each user got. Each event is stamped as it is handed to the producer.
func (f *fixture) publish(res *result) (map[int64]int64, error) {
	ctx := context.Background()
	perUser := map[int64]int64{}
	seq := map[string]int64{}
	batch := max(f.o.rate/100, 1)
	interval := time.Second * time.Duration(batch) / time.Duration(f.o.rate)
	var failed atomic.Pointer[error]
	start := time.Now()
	for b, k := 0, 0; b < int(f.o.duration/interval); b++ {
		time.Sleep(time.Until(start.Add(time.Duration(b) * interval)))
		for range batch {
			owner, i := int64(1+k%f.o.users), (k/f.o.users)%f.o.vms
			k++
			uuid := f.uuid(owner, i)
			seq[uuid]++
			perUser[owner]++
			vm := f.vm(owner, i)
			data := fmt.Appendf(vm[:len(vm)-1], `,"sent_ns":%d}`, time.Now().UnixNano())
			value, err := json.Marshal(map[string]any{"specversion": "1.0", "id": fmt.Sprintf("wsbench-%d", k), "source": "wsbench",
				"type": contract.TypeVMUpdated, "subject": uuid, "datacontenttype": "application/json",
				contract.ExtensionOwnerID: owner, contract.ExtensionSequence: seq[uuid], "data": json.RawMessage(data)})
			if err != nil {
				return nil, err
			}
			f.producer.Produce(ctx, &kgo.Record{Topic: contract.TopicVMEvents, Key: []byte(uuid), Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			})
			res.events++
		}
	}
	if err := f.producer.Flush(ctx); err != nil {
		return nil, err
	}
	if err := failed.Load(); err != nil {
		return nil, *err
	}
	return perUser, nil
}
