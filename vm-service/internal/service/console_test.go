package service_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"limen/libs/contract"
	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/libvirttest"
	"limen/vm-service/internal/service"
)

// consoleStack is a stack whose consoles work: it serves on a real listener (the console takes the
// connection over), trusts the gateway at 127.0.0.1 and opens console streams on the package's
// libvirtd.
func consoleStack(t *testing.T, configure ...func(*service.Config)) (*stack, string) {
	t.Helper()
	daemon := libvirttest.Shared(t)
	s := newStack(t, append([]func(*service.Config){func(c *service.Config) {
		c.LibvirtURI, c.LibvirtSocket = daemon.URI(), daemon.SocketPath()
		c.TrustedProxies = []string{"127.0.0.1"} // the gateway's address, as LIMEN_TRUSTED_PROXIES's default has it
	}}, configure...)...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.svc.App().Listener(ln) }()
	t.Cleanup(func() { ln.Close() })
	return s, ln.Addr().String()
}

type consoleTicket struct {
	WSURL     string    `json:"ws_url"`
	Protocol  string    `json:"protocol"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ticket asks for a console ticket with header, which must be issued, and answers it and its secret.
// With addr the request comes over the service's listener from 127.0.0.1, a trusted proxy's address
// (the gateway's); without, from an untrusted peer.
func (s *stack) ticket(token, vm, query string, header http.Header, addr string) (consoleTicket, string) {
	s.t.Helper()
	req := httptest.NewRequest("GET", "/api/vms/"+vm+"/console"+query, nil)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	var resp *http.Response
	var err error
	if addr != "" {
		req.RequestURI, req.URL.Scheme, req.URL.Host = "", "http", addr
		resp, err = http.DefaultClient.Do(req)
	} else {
		resp, err = s.svc.App().Test(req, 10_000)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	apidoc.Check(s.t, req, resp)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		s.t.Fatalf("console ticket: %d %s", resp.StatusCode, body)
	}
	var tk consoleTicket
	if err := json.Unmarshal(body, &tk); err != nil {
		s.t.Fatal(err)
	}
	u, err := url.Parse(tk.WSURL)
	if err != nil {
		s.t.Fatal(err)
	}
	return tk, u.Query().Get("token")
}

// openConsole asks vm-service's internal route for a console as the gateway does; on 101 it answers
// the connection (closed after the test), else the status and body.
func openConsole(t *testing.T, addr, vm, secret string, header http.Header) (net.Conn, *bufio.Reader, int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req, _ := http.NewRequest("GET", "http://"+addr+contract.InternalConsolePath(vm), nil)
	req.Header.Set("Authorization", "Bearer peer-secret")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", contract.ConsoleUpgrade)
	if secret != "" {
		req.Header.Set(contract.ConsoleTicketHeader, secret)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return conn, r, resp.StatusCode, ""
	}
	body, _ := io.ReadAll(resp.Body)
	apidoc.ValidateResponse(t, req, resp.StatusCode, resp.Header, body)
	return nil, nil, resp.StatusCode, string(body)
}

// greeting reads a display's first bytes: RFB's version.
func greeting(t *testing.T, r *bufio.Reader, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 12)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("no RFB greeting: %v", err)
	}
	return string(buf)
}

// A console ticket names the gateway's socket as the client reached it; it opens the VM's display
// once; a spent, forged, missing, expired or other VM's ticket opens nothing, nor does a request
// that is no upgrade (which leaves the ticket unspent); a stopped VM has no console (409), another
// user's VM none either (404).
func TestConsole_TicketOpensTheDisplayOnce(t *testing.T) {
	s, addr := consoleStack(t, func(c *service.Config) { c.ConsoleTicketTTL = 3 * time.Second })
	alice, bob := s.token(1, "user"), s.token(2, "user")
	vm := s.create(alice, "shown")
	other := s.create(alice, "other")
	if code, _, body := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _, body := s.action(alice, other.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, body)
	}
	stopped := s.create(alice, "stopped")

	for _, c := range []struct {
		token, vm, query string
		status           int
		body             string
	}{
		{bob, vm.UUID, "", 404, `{"code":404,"message":"VM not found"}`},
		{alice, stopped.UUID, "", 409, `{"code":409,"message":"VM is not running"}`},
		{alice, vm.UUID, "?type=rdp", 400, `{"code":400,"message":"Invalid console type: rdp. Valid types: vnc, serial"}`},
		{alice, "nope", "", 400, `{"code":400,"message":"Invalid VM reference: nope"}`},
	} {
		if a := s.call("GET", "/api/vms/"+c.vm+"/console"+c.query, c.token, ""); a.status != c.status || string(a.body) != c.body {
			t.Errorf("console of %s%s: %d %s, want %d %s", c.vm, c.query, a.status, a.body, c.status, c.body)
		}
	}

	// The socket's URL is the gateway's as the client reached it: the gateway (a trusted proxy)
	// passes the client's scheme and host on; anyone else's forwarding headers are ignored.
	forwarded := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"limen.example:8443"}}
	asked := time.Now()
	tk, secret := s.ticket(alice, vm.UUID, "", forwarded, addr)
	if want := "wss://limen.example:8443/vnc/" + vm.UUID + "?token=" + secret; tk.WSURL != want || tk.Protocol != "vnc" || len(secret) < 40 {
		t.Fatalf("ticket %+v, want ws_url %s", tk, want)
	}
	if ttl := tk.ExpiresAt.Sub(asked); ttl < 2*time.Second || ttl > 4*time.Second {
		t.Fatalf("expires in %v, want LIMEN_CONSOLE_TICKET_TTL (3s)", ttl)
	}
	if tk, _ := s.ticket(alice, vm.UUID, "?type=vnc", forwarded, ""); !strings.HasPrefix(tk.WSURL, "ws://example.com/vnc/") {
		t.Fatalf("forwarded by an untrusted peer: %s", tk.WSURL)
	}

	// No upgrade: refused before the ticket is looked at, which stays good.
	req, _ := http.NewRequest("GET", "http://"+addr+contract.InternalConsolePath(vm.UUID), nil)
	req.Header.Set("Authorization", "Bearer peer-secret")
	req.Header.Set(contract.ConsoleTicketHeader, secret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("without an upgrade: %v %v", resp, err)
	}
	// Without the internal token nothing is redeemed either.
	if _, _, code, _ := openConsole(t, addr, vm.UUID, secret, http.Header{"Authorization": {"Bearer " + alice}}); code != http.StatusUnauthorized {
		t.Fatalf("with a user's token instead of the internal one: %d", code)
	}

	conn, r, code, body := openConsole(t, addr, vm.UUID, secret, nil)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d %s", code, body)
	}
	if g := greeting(t, r, conn); g != "RFB 003.008\n" {
		t.Fatalf("display said %q", g)
	}

	refused := `{"code":401,"message":"Authentication required"}`
	_, otherSecret := s.ticket(alice, other.UUID, "", nil, "")
	_, unknownVMSecret := s.ticket(alice, other.UUID, "", nil, "")
	_, expiring := s.ticket(alice, vm.UUID, "", nil, "")
	for name, c := range map[string]struct{ vm, secret string }{
		"spent":            {vm.UUID, secret},
		"forged":           {vm.UUID, strings.Repeat("A", len(secret))},
		"missing":          {vm.UUID, ""},
		"another VM's":     {vm.UUID, otherSecret},
		"at an unknown VM": {"00000000-0000-4000-8000-000000000000", unknownVMSecret},
	} {
		if _, _, code, body := openConsole(t, addr, c.vm, c.secret, nil); code != http.StatusUnauthorized || body != refused {
			t.Errorf("%s ticket: %d %s", name, code, body)
		}
	}
	time.Sleep(time.Until(tk.ExpiresAt.Add(100 * time.Millisecond)))
	if _, _, code, body := openConsole(t, addr, vm.UUID, expiring, nil); code != http.StatusUnauthorized || body != refused {
		t.Errorf("expired ticket: %d %s", code, body)
	}
	// The console opened first is still open.
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r.ReadByte(); err == io.EOF {
		t.Fatal("the open console ended")
	}
}

// Tickets race: of many parallel redemptions of one ticket, exactly one opens the console.
func TestConsole_ParallelRedemptionsOpenOnce(t *testing.T) {
	s, addr := consoleStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "raced")
	if code, _, body := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, body)
	}
	_, secret := s.ticket(alice, vm.UUID, "", nil, "")
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for range 16 {
		wg.Go(func() {
			_, _, code, _ := openConsole(t, addr, vm.UUID, secret, nil)
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	opened := 0
	for code := range codes {
		switch code {
		case http.StatusSwitchingProtocols:
			opened++
		case http.StatusUnauthorized:
		default:
			t.Errorf("status %d", code)
		}
	}
	if opened != 1 {
		t.Fatalf("%d redemptions opened the console, want 1", opened)
	}
}

// An open console closes when the token its ticket was issued for is revoked (here the user's role
// changed), and so do a display and a serial line whose VM stops; a ticket issued before the change
// opens nothing.
func TestConsole_ClosesOnRevocationAndStop(t *testing.T) {
	s, addr := consoleStack(t)
	alice, carol := s.token(1, "user"), s.token(3, "user")
	vm := s.create(alice, "watched")
	theirs := s.create(carol, "stopping")
	for _, c := range []struct{ token, vm string }{{alice, vm.UUID}, {carol, theirs.UUID}} {
		if code, _, body := s.action(c.token, c.vm, `{"action":"start"}`); code != http.StatusOK {
			t.Fatalf("start: %d %s", code, body)
		}
	}
	_, first := s.ticket(alice, vm.UUID, "", nil, "")
	_, second := s.ticket(alice, vm.UUID, "?type=serial", nil, "")
	_, carols := s.ticket(carol, theirs.UUID, "", nil, "")
	_, carolsSerial := s.ticket(carol, theirs.UUID, "?type=serial", nil, "")
	conn, r, code, body := openConsole(t, addr, vm.UUID, first, nil)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d %s", code, body)
	}
	greeting(t, r, conn)
	carolsConn, carolsReader, code, body := openConsole(t, addr, theirs.UUID, carols, nil)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d %s", code, body)
	}
	greeting(t, carolsReader, carolsConn)
	serialConn, serialReader, code, body := openConsole(t, addr, theirs.UUID, carolsSerial, nil)
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("open the serial line: %d %s", code, body)
	}

	changed := time.Now()
	s.publishUserEvent(contract.TypeUserChanged, contract.UserChange{UserID: 1, TokenVersion: 1})
	waitEOF(t, conn, r, 10*time.Second)
	t.Logf("console closed %v after the change was published", time.Since(changed).Round(time.Millisecond))
	if _, _, code, _ := openConsole(t, addr, vm.UUID, second, nil); code != http.StatusUnauthorized {
		t.Fatalf("a ticket of the revoked token: %d", code)
	}

	if code, _, body := s.action(carol, theirs.UUID, `{"action":"force_stop"}`); code != http.StatusOK {
		t.Fatalf("force stop: %d %s", code, body)
	}
	waitEOF(t, carolsConn, carolsReader, 10*time.Second)
	waitEOF(t, serialConn, serialReader, 10*time.Second)
}

// waitEOF reads what the console still sends until it ends, which it must within d.
func waitEOF(t *testing.T, conn net.Conn, r *bufio.Reader, d time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("the console did not end within %v: %v", d, err)
	}
}

type statsJSON struct {
	VMID               int64     `json:"vm_id"`
	VMUUID             string    `json:"vm_uuid"`
	Status             string    `json:"status"`
	CPUUsagePercent    float64   `json:"cpu_usage_percent"`
	MemoryUsedMB       int64     `json:"memory_used_mb"`
	MemoryTotalMB      int64     `json:"memory_total_mb"`
	MemoryUsagePercent float64   `json:"memory_usage_percent"`
	VCPUs              int       `json:"vcpus"`
	DiskReadBytes      uint64    `json:"disk_read_bytes"`
	DiskWriteBytes     uint64    `json:"disk_write_bytes"`
	NetRxBytes         uint64    `json:"net_rx_bytes"`
	NetTxBytes         uint64    `json:"net_tx_bytes"`
	UptimeS            int64     `json:"uptime_s"`
	Timestamp          time.Time `json:"timestamp"`
}

// stats is a VM's stats, which must be answered.
func (s *stack) stats(token, vm string) statsJSON {
	s.t.Helper()
	a := s.call("GET", "/api/vms/"+vm+"/stats", token, "")
	if a.status != http.StatusOK {
		s.t.Fatalf("stats: %d %s", a.status, a.body)
	}
	var out statsJSON
	a.decode(s.t, &out)
	return out
}

// A running VM's stats show its memory, vCPUs, disk reads and an uptime that grows; a stopped one
// zeros and its status; others' VMs are 404; an admin's all=true lists everyone's from one reading.
func TestStats_RunningStoppedAndEveryone(t *testing.T) {
	s, _ := consoleStack(t, func(c *service.Config) { c.StatsInterval = 200 * time.Millisecond })
	alice, bob, admin := s.token(1, "user"), s.token(2, "user"), s.token(9, "admin")
	running := s.create(alice, "running")
	stopped := s.create(bob, "stopped")
	if code, _, body := s.action(alice, running.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, body)
	}
	var got statsJSON
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = s.stats(alice, running.UUID)
		if got.MemoryUsedMB > 0 && got.UptimeS >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no memory use or uptime after 20 s: %+v", got)
		}
	}
	if got.Status != "Running" || got.VMUUID != running.UUID || got.VMID != running.ID || got.MemoryTotalMB != 64 ||
		got.VCPUs != 1 || got.MemoryUsagePercent <= 0 || got.MemoryUsagePercent > 100 || got.CPUUsagePercent < 0 ||
		got.CPUUsagePercent > 100 || time.Since(got.Timestamp) > 2*time.Second {
		t.Fatalf("running: %+v", got)
	}
	t.Logf("running VM (SeaBIOS, no OS): %+v", got)
	if zero := s.stats(bob, stopped.UUID); zero != (statsJSON{VMID: stopped.ID, VMUUID: stopped.UUID, Status: "Stopped", Timestamp: zero.Timestamp}) {
		t.Fatalf("stopped: %+v", zero)
	}
	if a := s.call("GET", "/api/vms/"+running.UUID+"/stats", bob, ""); a.status != http.StatusNotFound {
		t.Fatalf("another user's VM: %d %s", a.status, a.body)
	}

	var all []statsJSON
	a := s.call("GET", "/api/vms/stats?all=true", admin, "")
	a.decode(t, &all)
	if a.status != http.StatusOK || len(all) != 2 || all[0].VMUUID != running.UUID || all[0].Status != "Running" ||
		all[1].VMUUID != stopped.UUID || all[1].Status != "Stopped" || all[1].MemoryUsedMB != 0 {
		t.Fatalf("everyone's: %d %s", a.status, a.body)
	}
	var own []statsJSON
	a = s.call("GET", "/api/vms/stats?all=true", bob, "")
	a.decode(t, &own)
	if a.status != http.StatusOK || len(own) != 1 || own[0].VMUUID != stopped.UUID {
		t.Fatalf("a user's all=true is their own: %d %s", a.status, a.body)
	}

	// Stopped again: zeros at once, whatever was read before.
	if code, _, body := s.action(alice, running.UUID, `{"action":"force_stop"}`); code != http.StatusOK {
		t.Fatalf("force stop: %d %s", code, body)
	}
	if got := s.stats(alice, running.UUID); got.Status != "Stopped" || got.MemoryUsedMB != 0 || got.UptimeS != 0 || got.VCPUs != 0 {
		t.Fatalf("after the stop: %+v", got)
	}
}
