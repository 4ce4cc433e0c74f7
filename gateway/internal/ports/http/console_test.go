package http_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/contract"
	"limen/libs/web"
)

// fakeConsoles stands in for vm-service's internal console route: ticket "echo" opens a console that
// sends back what it gets, "flood" one that sends without end (as a busy screen would), "stopped" is
// refused with 409 and anything else with 401, as vm-service answers.
type fakeConsoles struct {
	addr string
	// asked counts the requests that reached it; closed the consoles whose connection ended.
	asked, closed atomic.Int64
}

func startFakeConsoles(t *testing.T) *fakeConsoles {
	t.Helper()
	f := &fakeConsoles{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f.addr = ln.Addr().String()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(conn)
		}
	}()
	return f
}

func (f *fakeConsoles) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	req, err := http.ReadRequest(r)
	if err != nil {
		return
	}
	f.asked.Add(1)
	refuse := func(code int, message string) {
		body := `{"code":` + strconv.Itoa(code) + `,"message":"` + message + `"}`
		_, _ = io.WriteString(conn, "HTTP/1.1 "+strconv.Itoa(code)+" "+http.StatusText(code)+"\r\nContent-Type: application/json\r\nContent-Length: "+
			strconv.Itoa(len(body))+"\r\n\r\n"+body)
	}
	ticket := req.Header.Get(contract.ConsoleTicketHeader)
	switch {
	case req.Header.Get("Authorization") != "Bearer internal" || !strings.EqualFold(req.Header.Get("Upgrade"), contract.ConsoleUpgrade) ||
		req.URL.Path != contract.InternalConsolePath(vmA):
		refuse(http.StatusUnauthorized, "Authentication required")
		return
	case ticket == "stopped":
		refuse(http.StatusConflict, "VM is not running")
		return
	case ticket != "echo" && ticket != "flood":
		refuse(http.StatusUnauthorized, "Authentication required")
		return
	}
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+contract.ConsoleUpgrade+"\r\n\r\n")
	defer f.closed.Add(1)
	if ticket == "echo" {
		_, _ = io.Copy(conn, r)
		return
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for {
		if _, err := conn.Write(chunk); err != nil {
			return
		}
	}
}

// startConsoleGateway is the gateway's console socket in front of vm-service at vmBase.
func startConsoleGateway(t *testing.T, vmBase, token string, writeTimeout time.Duration) (string, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	console := porthttp.NewConsole(ctx, vmBase, token, slog.New(slog.NewTextHandler(io.Discard, nil)))
	console.WriteTimeout = writeTimeout
	app := web.NewApp(web.AppConfig{Service: "gateway", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	app.Get(porthttp.ConsoleSocketPath, console.Open, console.Upgrade())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "ws://" + ln.Addr().String() + "/vnc/" + vmA, cancel
}

// dialConsole opens the socket with ticket as noVNC does; on refusal it answers the status and body.
func dialConsole(t *testing.T, socket, ticket string) (*websocket.Conn, int, string) {
	t.Helper()
	url := socket
	if ticket != "" {
		url += "?token=" + ticket
	}
	conn, resp, err := (&websocket.Dialer{Subprotocols: []string{"binary"}}).Dial(url, nil)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
		if conn.Subprotocol() != "binary" {
			t.Fatalf("subprotocol %q", conn.Subprotocol())
		}
		return conn, http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, string(body)
}

// consoleCloseCode reads until the socket ends and answers its close code (1006 when the connection
// just ended).
func consoleCloseCode(t *testing.T, conn *websocket.Conn, within time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			var closed *websocket.CloseError
			if !errors.As(err, &closed) {
				t.Fatalf("no end within %v: %v", within, err)
			}
			return closed.Code
		}
	}
}

// The socket redeems the ticket before it upgrades: vm-service's refusals come back as they are and
// no request that is not an upgrade, or carries no ticket, reaches it; without vm-service or the
// internal token it is 503.
func TestConsole_RefusalsBeforeTheUpgrade(t *testing.T) {
	f := startFakeConsoles(t)
	socket, _ := startConsoleGateway(t, "http://"+f.addr, "internal", 0)
	for _, c := range []struct {
		ticket string
		status int
		body   string
	}{
		{"", 401, `{"code":401,"message":"Authentication required"}`},
		{"forged", 401, `{"code":401,"message":"Authentication required"}`},
		{"stopped", 409, `{"code":409,"message":"VM is not running"}`},
	} {
		if _, status, body := dialConsole(t, socket, c.ticket); status != c.status || body != c.body {
			t.Errorf("ticket %q: %d %s, want %d %s", c.ticket, status, body, c.status, c.body)
		}
	}
	if f.asked.Load() != 2 {
		t.Fatalf("vm-service asked %d times, want 2 (no ticket: not asked)", f.asked.Load())
	}
	resp, err := http.Get("http" + strings.TrimPrefix(socket, "ws") + "?token=echo")
	if err != nil || resp.StatusCode != fiber.StatusUpgradeRequired || f.asked.Load() != 2 {
		t.Fatalf("not an upgrade: %v %v, vm-service asked %d times", resp, err, f.asked.Load())
	}

	for name, socket := range map[string]string{"no internal token": must(startConsoleGateway(t, "http://"+f.addr, "", 0)),
		"no vm-service": must(startConsoleGateway(t, "", "internal", 0))} {
		if _, status, body := dialConsole(t, socket, "echo"); status != 503 || body != `{"code":503,"message":"Service unavailable"}` {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
	if _, status, body := dialConsole(t, must(startConsoleGateway(t, "http://127.0.0.1:1", "internal", 0)), "echo"); status != 502 ||
		!strings.Contains(body, "upstream vm did not answer") {
		t.Errorf("vm-service down: %d %s", status, body)
	}
}

func must(s string, _ context.CancelFunc) string { return s }

// Bytes go both ways in binary frames, text frames from the client as bytes too; a frame over 1 MiB
// ends the socket (1009) and the console with it; the gateway stopping ends it with 1001.
func TestConsole_CarriesBytesAndClosesOnOversizedFramesAndShutdown(t *testing.T) {
	f := startFakeConsoles(t)
	socket, stop := startConsoleGateway(t, "http://"+f.addr, "internal", 0)
	conn, status, body := dialConsole(t, socket, "echo")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d %s", status, body)
	}
	for _, kind := range []int{websocket.BinaryMessage, websocket.TextMessage} {
		if err := conn.WriteMessage(kind, []byte("RFB 003.008\n")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, data, err := conn.ReadMessage()
		if err != nil || got != websocket.BinaryMessage || string(data) != "RFB 003.008\n" {
			t.Fatalf("echo: %d %q %v", got, data, err)
		}
	}
	if err := conn.WriteMessage(websocket.BinaryMessage, make([]byte, 1<<20+1)); err != nil {
		t.Fatal(err)
	}
	if code := consoleCloseCode(t, conn, 5*time.Second); code != websocket.CloseMessageTooBig {
		t.Fatalf("oversized frame: closed with %d, want 1009", code)
	}
	waitFor(t, func() bool { return f.closed.Load() == 1 }, "the console of the oversized frame to end")

	other, status, _ := dialConsole(t, socket, "echo")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d", status)
	}
	stop()
	if code := consoleCloseCode(t, other, 5*time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("shutdown: closed with %d, want 1001", code)
	}
	waitFor(t, func() bool { return f.closed.Load() == 2 }, "the console to end at shutdown")
}

// A client that stops reading a busy console is cut off (1008) and its console ended, while another
// client's console goes on as fast as before.
func TestConsole_SlowClientIsCutOffAlone(t *testing.T) {
	f := startFakeConsoles(t)
	socket, _ := startConsoleGateway(t, "http://"+f.addr, "internal", 500*time.Millisecond)
	slow, status, _ := dialConsole(t, socket, "flood")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d", status)
	}
	fast, status, _ := dialConsole(t, socket, "echo")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("open: %d", status)
	}
	// The slow client reads nothing while the fast one goes back and forth.
	stopped := time.Now()
	for i := 0; f.closed.Load() == 0; i++ {
		started := time.Now()
		if err := fast.WriteMessage(websocket.BinaryMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = fast.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, data, err := fast.ReadMessage(); err != nil || string(data) != "ping" {
			t.Fatalf("the other client's echo: %q %v", data, err)
		}
		if took := time.Since(started); took > time.Second {
			t.Fatalf("the other client's echo took %v while one client stalled", took)
		}
		if time.Since(stopped) > 10*time.Second {
			t.Fatal("the stalled client's console still runs after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("stalled client cut off %v after it stopped reading", time.Since(stopped).Round(time.Millisecond))
	// Its close frame may find no room behind what it left unread: then the connection just ends.
	if code := consoleCloseCode(t, slow, 10*time.Second); code != websocket.ClosePolicyViolation && code != websocket.CloseAbnormalClosure {
		t.Fatalf("the stalled client: closed with %d, want 1008", code)
	}
}

func waitFor(t *testing.T, done func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !done(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
	}
}

// The console page and the files it loads (noVNC's modules among them) are served from the gateway
// itself; nothing outside the embedded files is.
func TestConsolePage_ServesThePageAndNoVNC(t *testing.T) {
	app := web.NewApp(web.AppConfig{Service: "gateway", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	app.Get(porthttp.ConsoleAssetsPath+"/*", porthttp.ConsoleAsset)
	app.Get(porthttp.ConsolePagePath, porthttp.ConsolePage)
	for _, c := range []struct {
		path, contentType, contains string
		status                      int
	}{
		{"/console/" + vmA, "text/html; charset=utf-8", `src="/console/assets/console.js"`, 200},
		{"/console/assets/console.js", "text/javascript; charset=utf-8", "./novnc/core/rfb.js", 200},
		{"/console/assets/novnc/core/rfb.js", "text/javascript; charset=utf-8", "export default class RFB", 200},
		{"/console/assets/novnc/vendor/pako/lib/zlib/inflate.js", "text/javascript; charset=utf-8", "inflate", 200},
		{"/console/assets/novnc/LICENSE.txt", "text/plain; charset=utf-8", "MPL", 200},
		{"/console/assets/index.html", "", "", 404},
		{"/console/assets/%2e%2e/consolepage.go", "", "", 404},
		{"/console/assets/novnc/nothing.js", "", "", 404},
	} {
		resp, err := app.Test(httptestRequest(c.path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || c.status == 200 && (resp.Header.Get("Content-Type") != c.contentType || !bytes.Contains(body, []byte(c.contains))) {
			t.Errorf("%s: %d %s %.80q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	resp, err := app.Test(httptestRequest("/console/" + vmA))
	if err != nil {
		t.Fatal(err)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("the page's policy: %q", csp)
	}
}

func httptestRequest(path string) *http.Request {
	req, _ := http.NewRequest("GET", "http://gateway.example"+path, nil)
	return req
}
