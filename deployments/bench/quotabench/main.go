// Command quotabench measures what quota-service adds to a VM create through the gateway. On a running
// stack (deployments/bench/quota.sh starts it) it starts two pairs of gateway and vm-service from the
// stack's binaries with the stack's environments: one vm-service reserves with the stack's real
// quota-service, the other with a stand-in that admits every reservation at once
// (quotatest.AdmitEverything). Creates alternate between the two pairs (ABBA order) and each VM is
// deleted after its create, unmeasured; it prints p50 and p99 of each, the difference of the medians
// and the median of the paired differences, and from the services' own request histograms the mean
// time vm-service spent on a create and quota-service on its reserve and commit.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"limen/libs/contract"
	"limen/libs/testkit/procenv"
	"limen/libs/testkit/quotatest"
)

func main() {
	bin := flag.String("bin", "", "the stack's binaries (run.sh's $LIMEN_DATA_DIR/bin)")
	vmPID := flag.Int("vm-pid", 0, "the stack's vm-service, whose environment the pairs' vm-services get")
	gatewayPID := flag.Int("gateway-pid", 0, "the stack's gateway, whose environment the pairs' gateways get")
	logDir := flag.String("logs", "", "directory for the pairs' logs")
	token := flag.String("token", "", "an admin's access token")
	n := flag.Int("n", 200, "measured creates per configuration")
	warmup := flag.Int("warmup", 10, "unmeasured creates per configuration first")
	flag.Parse()

	vmEnv, err := procenv.Of(*vmPID)
	check(err)
	gwEnv, err := procenv.Of(*gatewayPID)
	check(err)
	quotaURL := required(vmEnv, "QUOTA_SERVICE_URL")
	standIn := &http.Server{Handler: quotatest.AdmitEverything(required(vmEnv, "LIMEN_INTERNAL_TOKEN")), ReadHeaderTimeout: 10 * time.Second}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go func() { _ = standIn.Serve(listener) }()
	defer standIn.Close()

	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	pair := func(name, quota string) target {
		vm, gw := freeAddr(), freeAddr()
		procs = append(procs, start(filepath.Join(*bin, "vm-service"), filepath.Join(*logDir, name+"-vm-service.log"),
			procenv.With(vmEnv, "LISTEN_ADDR="+vm, "QUOTA_SERVICE_URL="+quota), "http://"+vm+"/readyz"))
		procs = append(procs, start(filepath.Join(*bin, "gateway"), filepath.Join(*logDir, name+"-gateway.log"),
			procenv.With(gwEnv, "LISTEN_ADDR="+gw, "VM_SERVICE_URL=http://"+vm, "LIMEN_METRICS_ADDR=off"), "http://"+gw+"/api/health"))
		return target{name: name, gateway: "http://" + gw, vmService: "http://" + vm, token: *token}
	}
	reserving, admitting := pair("quota-service", quotaURL), pair("stand-in", "http://"+listener.Addr().String())
	targets := []target{reserving, admitting}

	// Room for the creates in flight and the deletions quota-service has not read yet.
	reserving.call("PUT", "/api/quota", map[string]any{"user_id": reserving.me(), "max_vms": 10000, "max_cpu": 64000, "max_memory": 262144000}, http.StatusOK)
	for i := range *warmup {
		for _, t := range targets {
			t.createAndDelete(fmt.Sprintf("warmup-%d", i))
		}
	}
	vmBefore := []histogram{histogramOf(reserving.vmService, "POST", "/api/vms/"), histogramOf(admitting.vmService, "POST", "/api/vms/")}
	reserveBefore := histogramOf(quotaURL, "POST", contract.InternalReservationsRoute)
	commitBefore := histogramOf(quotaURL, "POST", contract.InternalReservationCommitRoute)
	times := make([][]time.Duration, 2)
	for i := range *n {
		// ABBA: neither configuration is always the one that runs right after the other's delete.
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			times[k] = append(times[k], targets[k].createAndDelete(fmt.Sprintf("bench-%d", i)))
		}
	}
	reserve := histogramOf(quotaURL, "POST", contract.InternalReservationsRoute).minus(reserveBefore)
	commit := histogramOf(quotaURL, "POST", contract.InternalReservationCommitRoute).minus(commitBefore)

	paired := make([]time.Duration, *n)
	for i := range paired {
		paired[i] = times[0][i] - times[1][i]
	}
	fmt.Printf("VM create through the gateway (cpu 1, 64 MiB, os_type other: a qcow2 disk and a domain), %d each, interleaved, on %d cores\n", *n, runtime.NumCPU())
	fmt.Printf("  %-28s %9s %9s %9s %26s\n", "vm-service reserving with", "p50", "p99", "mean", "vm-service's own mean")
	for k, t := range targets {
		own := histogramOf(t.vmService, "POST", "/api/vms/").minus(vmBefore[k])
		fmt.Printf("  %-28s %9s %9s %9s %26s\n", t.name, ms(percentile(times[k], 50)), ms(percentile(times[k], 99)), ms(mean(times[k])), own.mean())
	}
	fmt.Printf("  added by quota-service: %s at p50 (p50 of the paired differences: %s)\n",
		ms(percentile(times[0], 50)-percentile(times[1], 50)), ms(percentile(paired, 50)))
	fmt.Printf("  quota-service's own time per create: reserve %s + commit %s (means of its request histogram, %d and %d calls)\n",
		reserve.mean(), commit.mean(), reserve.count, commit.count)
}

// target is a gateway and the vm-service behind it.
type target struct{ name, gateway, vmService, token string }

// createAndDelete times one create through the gateway, then deletes the VM.
func (t target) createAndDelete(name string) time.Duration {
	began := time.Now()
	vm := t.call("POST", "/api/vms", map[string]any{"name": t.name + " " + name, "cpu": 1, "memory": 64, "os_type": "other"}, http.StatusCreated)
	took := time.Since(began)
	t.call("DELETE", "/api/vms/"+vm["uuid"].(string), nil, http.StatusOK)
	return took
}

func (t target) me() int64 {
	return int64(t.call("GET", "/api/auth/me", nil, http.StatusOK)["id"].(float64))
}

func (t target) call(method, path string, body any, want int) map[string]any {
	var payload io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		check(err)
		payload = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, t.gateway+path, payload)
	check(err)
	req.Header.Set("Authorization", "Bearer "+t.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	check(err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		fail(fmt.Sprintf("%s: %s %s: %d %s", t.name, method, path, resp.StatusCode, raw))
	}
	var answer map[string]any
	_ = json.Unmarshal(raw, &answer)
	return answer
}

// histogram is the sum and count of a service's http_server_request_duration_seconds for one route.
type histogram struct {
	sum   float64
	count int
}

// histogramOf reads the route's histogram from service's /metrics, summed over statuses.
func histogramOf(service, method, route string) histogram {
	resp, err := http.Get(service + "/metrics")
	check(err)
	defer resp.Body.Close()
	var h histogram
	labels := fmt.Sprintf(`method=%q,route=%q,`, method, route)
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, rest, _ := strings.Cut(lines.Text(), "{")
		if !strings.HasPrefix(rest, labels) {
			continue
		}
		value, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		check(err)
		switch name {
		case "http_server_request_duration_seconds_sum":
			h.sum += value
		case "http_server_request_duration_seconds_count":
			h.count += int(value)
		}
	}
	check(lines.Err())
	return h
}

func (h histogram) minus(before histogram) histogram {
	return histogram{sum: h.sum - before.sum, count: h.count - before.count}
}

// mean is "n/a" when the route saw no request (a route label that changed).
func (h histogram) mean() string {
	if h.count == 0 {
		return "n/a"
	}
	return ms(time.Duration(h.sum / float64(h.count) * float64(time.Second)))
}

// start runs binary with env, logging to log, and waits until ready answers 200.
func start(binary, log string, env []string, ready string) *exec.Cmd {
	out, err := os.Create(log)
	check(err)
	defer out.Close()
	cmd := exec.Command(binary)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	check(cmd.Start())
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			fail(binary + " not ready within 60 s; see " + log)
		}
	}
}

// required is key's value in env; the benchmark cannot go on without it.
func required(env []string, key string) string {
	v := procenv.Value(env, key)
	if v == "" {
		fail(key + " is not in the environment")
	}
	return v
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().String()
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Sorted(slices.Values(d))
	return s[(len(s)-1)*p/100]
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "quotabench:", msg)
	os.Exit(1)
}
