package e2e_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// serialLine is a serial console socket, read in the background.
type serialLine struct {
	conn *websocket.Conn
	out  chan string
}

func openSerial(t *testing.T, url string) *serialLine {
	t.Helper()
	conn, code, body, err := dialConsole(url)
	if err != nil || code != http.StatusSwitchingProtocols {
		t.Fatalf("serial console: %d %s %v", code, body, err)
	}
	t.Cleanup(func() { conn.Close() })
	l := &serialLine{conn: conn, out: make(chan string, 1024)}
	go func() {
		defer close(l.out)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			l.out <- string(data)
		}
	}()
	return l
}

// waitFor reads the line until it has printed want, which it must within d; it answers all it read.
func (l *serialLine) waitFor(t *testing.T, want string, d time.Duration) string {
	t.Helper()
	var seen strings.Builder
	timeout := time.After(d)
	for !strings.Contains(seen.String(), want) {
		select {
		case chunk, ok := <-l.out:
			if !ok {
				t.Fatalf("the serial console closed before %q; it said:\n%s", want, seen.String())
			}
			seen.WriteString(chunk)
		case <-timeout:
			t.Fatalf("no %q within %v; the serial console said:\n%s", want, d, seen.String())
		}
	}
	return seen.String()
}

func (l *serialLine) send(t *testing.T, text string) {
	t.Helper()
	if err := l.conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
}

// Through the gateway, with the real guest on vm-service's own definition: its serial line shows the
// boot and takes a command; the display completes RFB's handshake and shows a screen that is not
// blank; the stats show the guest's CPU and memory use, and zeros once it is stopped; tickets that are
// spent, forged, expired, another VM's or missing open nothing (401 on the upgrade), and a stopped VM
// has no console (409).
func TestConsole_ThroughTheGateway(t *testing.T) {
	const ttl = 8 * time.Second
	s := newStack(t, map[string]string{"LIMEN_CONSOLE_TICKET_TTL": ttl.String(), "LIMEN_STATS_INTERVAL": "1s"})
	alice := s.token(1, "user")
	vm := s.createGuest(alice, "guest")
	plain := s.create(alice, "plain", 64)

	if code, body := s.call("GET", "/api/vms/"+vm.UUID+"/console", alice, ""); code != http.StatusConflict ||
		body == nil || !strings.Contains(string(body), `"VM is not running"`) {
		t.Fatalf("console of a stopped VM: %d %s", code, body)
	}

	s.act(alice, vm.UUID, "start")
	// At once, so as to see the boot: the guest prints on its serial line only while someone listens.
	serial := openSerial(t, s.ticket(alice, vm.UUID, "serial").WSURL)
	booted := time.Now()
	serial.waitFor(t, "limen-testguest: up", 3*time.Minute)
	t.Logf("boot line read %v after the socket opened", time.Since(booted).Round(time.Millisecond))
	serial.send(t, "echo typed-$((6*7))\n")
	serial.waitFor(t, "typed-42", 30*time.Second)
	// Keep the vCPU busy, for the stats.
	serial.send(t, "(while :; do :; done) &\n")

	display := s.ticket(alice, vm.UUID, "vnc")
	conn, code, body, err := dialConsole(display.WSURL)
	if err != nil || code != http.StatusSwitchingProtocols {
		t.Fatalf("display: %d %s %v", code, body, err)
	}
	defer conn.Close()
	screen, err := rfbHandshake(&wsStream{conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	if err := screen.request(false); err != nil {
		t.Fatal(err)
	}
	pixels, _, err := screen.update()
	if err != nil {
		t.Fatal(err)
	}
	if len(pixels) != screen.width*screen.height*screen.bytesPerPixel || colours(pixels, screen.bytesPerPixel, 16) < 2 {
		t.Fatalf("screen %dx%d (%q): %d bytes, %d colours: blank", screen.width, screen.height, screen.name,
			len(pixels), colours(pixels, screen.bytesPerPixel, 16))
	}
	t.Logf("screen %dx%d %q, %d colours", screen.width, screen.height, screen.name, colours(pixels, screen.bytesPerPixel, 1000))

	var st statsJSON
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st = s.stats(alice, vm.UUID)
		if st.CPUUsagePercent > 50 && st.MemoryUsedMB > 0 && st.UptimeS >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a busy guest's stats after 30 s: %+v", st)
		}
	}
	if st.Status != "Running" || st.MemoryTotalMB != 128 || st.VCPUs != 1 {
		t.Fatalf("running guest: %+v", st)
	}
	t.Logf("busy guest: %+v", st)

	// Refusals, each a 401 on the upgrade with nothing opened.
	s.act(alice, plain.UUID, "start")
	othersTicket := s.ticket(alice, plain.UUID, "vnc")
	expiring := s.ticket(alice, vm.UUID, "vnc")
	token := func(url string) string { return url[strings.Index(url, "?token=")+len("?token="):] }
	socket := "ws://" + s.gateway + "/vnc/" + vm.UUID
	refused := `{"code":401,"message":"Authentication required"}`
	for name, url := range map[string]string{
		"spent":        display.WSURL,
		"forged":       socket + "?token=" + strings.Repeat("x", 43),
		"another VM's": socket + "?token=" + token(othersTicket.WSURL),
		"missing":      socket,
	} {
		if _, code, body, err := dialConsole(url); err != nil || code != http.StatusUnauthorized || body != refused {
			t.Errorf("%s ticket: %d %s %v", name, code, body, err)
		}
	}
	if resp, err := http.Get("http://" + s.gateway + "/vnc/" + vm.UUID + "?token=" + token(expiring.WSURL)); err != nil ||
		resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("not an upgrade: %v %v", resp, err)
	}
	time.Sleep(time.Until(expiring.ExpiresAt.Add(100 * time.Millisecond)))
	if _, code, body, err := dialConsole(expiring.WSURL); err != nil || code != http.StatusUnauthorized || body != refused {
		t.Errorf("expired ticket: %d %s %v", code, body, err)
	}

	// The page, in a real browser.
	showPage(t, s, alice, vm.UUID)

	// Stopped: the consoles end, the stats are zeros.
	s.act(alice, vm.UUID, "force_stop")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var closed *websocket.CloseError
			if !errors.As(err, &closed) || closed.Code != websocket.CloseNormalClosure {
				t.Fatalf("the display socket ended with %v, want 1000", err)
			}
			break
		}
	}
	if st := s.stats(alice, vm.UUID); st != (statsJSON{Status: "Stopped"}) {
		t.Fatalf("stopped guest: %+v", st)
	}
}
