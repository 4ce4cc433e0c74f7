package e2e_test

import (
	"net"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkConsole_GatewayVsDirect asks for the whole screen of the same running VM (no OS: SeaBIOS's
// text screen, 720x400, raw, 1.1 MiB a frame) through the gateway (WebSocket, gateway, vm-service)
// and directly on its display's unix socket, in turns; it reports each path's p50 and p99 and the
// throughput of a full-screen update.
func BenchmarkConsole_GatewayVsDirect(b *testing.B) {
	s := newStack(b, map[string]string{"LIMEN_VM_NETWORK": "none"})
	token := s.token(1, "user")
	vm := s.create(token, "measured", 64)
	s.act(token, vm.UUID, "start")
	time.Sleep(2 * time.Second) // past SeaBIOS's first screens

	conn, code, body, err := dialConsole(s.ticket(token, vm.UUID, "vnc").WSURL)
	if err != nil || code != http.StatusSwitchingProtocols {
		b.Fatalf("display: %d %s %v", code, body, err)
	}
	b.Cleanup(func() { conn.Close() })
	viaGateway, err := rfbHandshake(&wsStream{conn: conn})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := net.Dial("unix", s.displaySocket(vm.UUID))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	direct, err := rfbHandshake(raw)
	if err != nil {
		b.Fatal(err)
	}
	frame := func(c *rfb) (time.Duration, int) {
		started := time.Now()
		if err := c.request(false); err != nil {
			b.Fatal(err)
		}
		_, wire, err := c.update()
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(started), wire
	}
	var gw, dir []time.Duration
	var bytes int
	for b.Loop() {
		d, n := frame(viaGateway)
		gw = append(gw, d)
		bytes = n
		d, _ = frame(direct)
		dir = append(dir, d)
	}
	slices.Sort(gw)
	slices.Sort(dir)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(gw[len(gw)/2]), "gateway-p50-ms")
	b.ReportMetric(ms(gw[len(gw)*99/100]), "gateway-p99-ms")
	b.ReportMetric(ms(dir[len(dir)/2]), "direct-p50-ms")
	b.ReportMetric(ms(dir[len(dir)*99/100]), "direct-p99-ms")
	b.ReportMetric(float64(gw[len(gw)/2])/float64(dir[len(dir)/2]), "p50-ratio")
	b.ReportMetric(float64(bytes)/gw[len(gw)/2].Seconds()/(1<<20), "gateway-MiB/s")
	b.ReportMetric(float64(bytes)/dir[len(dir)/2].Seconds()/(1<<20), "direct-MiB/s")
}
