package service_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"

	"limen/vm-service/internal/service"
)

// BenchmarkStats_50RunningVMs is GET /api/vms/{ref}/stats (one user's VM) and the admin's GET
// /api/vms/stats?all=true with 50 running machines (64 MiB, no OS, no NIC), over vm-service's HTTP
// listener; it reports the latencies' p50 and p99, and the bulk libvirt call the sampler makes.
func BenchmarkStats_50RunningVMs(b *testing.B) {
	const machines = 50
	s := newStack(b, func(c *service.Config) { c.Network = "none"; c.StatsInterval = time.Second })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.svc.App().Listener(ln) }()
	b.Cleanup(func() { ln.Close() })
	admin := s.token(9, "admin")
	users := make([]string, machines)
	refs := make([]string, machines)
	for i := range machines {
		users[i] = s.token(int64(100+i), "user")
		a := s.call("POST", "/api/vms", users[i], fmt.Sprintf(`{"name":"stats-%d","cpu":1,"memory":64,"os_type":"other","start":true}`, i))
		if a.status != http.StatusCreated {
			b.Fatalf("create %d: %d %s", i, a.status, a.body)
		}
		var vm vmJSON
		a.decode(b, &vm)
		refs[i] = vm.UUID
	}
	get := func(path, token string) time.Duration {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		started := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(started)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return took
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		var all []statsJSON
		a := s.call("GET", "/api/vms/stats?all=true", admin, "")
		a.decode(b, &all)
		sampled := 0
		for _, st := range all {
			if st.Status == "Running" && st.MemoryUsedMB > 0 {
				sampled++
			}
		}
		if sampled == machines {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d machines sampled after 2 minutes", sampled, machines)
		}
	}
	var one, all, bulk []time.Duration
	l := s.libvirt()
	for i := 0; b.Loop(); i++ {
		one = append(one, get("/api/vms/"+refs[i%machines]+"/stats", users[i%machines]))
		all = append(all, get("/api/vms/stats?all=true", admin))
		if i%10 == 0 {
			started := time.Now()
			if _, err := l.ConnectGetAllDomainStats(nil, uint32(golibvirt.DomainStatsState|golibvirt.DomainStatsCPUTotal|
				golibvirt.DomainStatsBalloon|golibvirt.DomainStatsVCPU|golibvirt.DomainStatsInterface|golibvirt.DomainStatsBlock),
				uint32(golibvirt.ConnectGetAllDomainsStatsActive)); err != nil {
				b.Fatal(err)
			}
			bulk = append(bulk, time.Since(started))
		}
	}
	for name, d := range map[string][]time.Duration{"stats": one, "all": all, "bulk": bulk} {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(d[len(d)*99/100].Microseconds())/1000, name+"-p99-ms")
	}
}
