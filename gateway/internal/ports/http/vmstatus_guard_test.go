package http_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
)

// dialWith opens the socket with extra request headers (name, value pairs; "Host" sets the host).
func (g *liveGateway) dialWith(t *testing.T, token string, headers ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+g.addr+porthttp.VMStatusPath+"?token="+token, h)
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, resp, err
}

func TestVMStatus_Origin_OnlyAllowedOrSameOriginPagesMayUpgrade(t *testing.T) {
	g := startLiveGateway(t, liveOptions{origins: []string{"https://app.example", "https://*.limen.example"}})
	token := g.issuer.Token(t, userA, authn.RoleUser)
	for name, headers := range map[string][]string{
		"no Origin (not a browser)":   nil,
		"an allowed origin":           {"Origin", "https://app.example"},
		"an allowed origin, capitals": {"Origin", "https://App.Example"},
		"a wildcard subdomain":        {"Origin", "https://console.limen.example"},
		"same origin":                 {"Origin", "http://" + g.addr},
		"same origin, own host name":  {"Origin", "https://limen.internal", "Host", "limen.internal"},
		"same origin, default port":   {"Origin", "https://limen.internal", "Host", "limen.internal:443"},
	} {
		t.Run(name, func(t *testing.T) {
			conn, resp, err := g.dialWith(t, token, headers...)
			if err != nil {
				t.Fatalf("refused: %v %+v", err, resp)
			}
			if m := read(t, conn); m.Type != "vm_list" {
				t.Fatalf("%+v", m)
			}
		})
	}
	for name, headers := range map[string][]string{
		"another site":                  {"Origin", "https://evil.example"},
		"an opaque origin":              {"Origin", "null"},
		"an allowed host, other scheme": {"Origin", "http://app.example"},
		"an allowed host, other port":   {"Origin", "https://app.example:8443"},
		"an allowed name as a prefix":   {"Origin", "https://app.example.evil.example"},
		"the wildcard's bare domain":    {"Origin", "https://limen.example"},
		"a lookalike of the wildcard":   {"Origin", "https://evillimen.example"},
		"same host, other port":         {"Origin", "http://limen.internal:8080", "Host", "limen.internal"},
		"not an origin":                 {"Origin", "https://app.example/path"},
	} {
		t.Run(name, func(t *testing.T) {
			conn, resp, err := g.dialWith(t, token, headers...)
			if err == nil {
				_ = conn.Close()
				t.Fatal("upgraded")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%v %+v", err, resp)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != `{"code":403,"message":"Origin not allowed"}` {
				t.Fatalf("body %s", body)
			}
		})
	}
	// Checked before the token: a foreign page learns nothing about it.
	if _, resp, _ := g.dialWith(t, "bad", "Origin", "https://evil.example"); resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad token from a foreign origin: %+v", resp)
	}
}

func TestVMStatus_Origin_WithoutConfiguredOriginsOnlySameOrigin(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	token := g.issuer.Token(t, userA, authn.RoleUser)
	if conn, _, err := g.dialWith(t, token, "Origin", "http://"+g.addr); err != nil {
		t.Fatalf("same origin refused: %v", err)
	} else if m := read(t, conn); m.Type != "vm_list" {
		t.Fatalf("%+v", m)
	}
	if _, resp, err := g.dialWith(t, token, "Origin", "http://localhost:3000"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %+v", err, resp)
	}
}

// closeFrame reads until the server closes the connection and returns its close frame.
func closeFrame(t *testing.T, conn *websocket.Conn, within time.Duration) *websocket.CloseError {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	for {
		_, _, err := conn.ReadMessage()
		var closed *websocket.CloseError
		if errors.As(err, &closed) {
			return closed
		}
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
	}
}

func TestVMStatus_MaxPerUser_TheOldestSocketGoes(t *testing.T) {
	g := startLiveGateway(t, liveOptions{maxPerUser: 2})
	tokenA := g.issuer.Token(t, userA, authn.RoleUser)
	first, _ := g.connect(t, tokenA)
	second, _ := g.connect(t, tokenA)
	other, _ := g.connect(t, g.issuer.Token(t, userB, authn.RoleUser))
	third, _ := g.connect(t, tokenA)
	closed := closeFrame(t, first, 5*time.Second)
	if closed.Code != websocket.ClosePolicyViolation || closed.Text != "Too many connections" {
		t.Fatalf("oldest closed with %d %q", closed.Code, closed.Text)
	}
	// The two newest of user A and user B's socket stay and keep getting updates.
	g.update(t, vmA, userA, 1, "Running")
	for _, conn := range []*websocket.Conn{second, third} {
		if m := read(t, conn); m.Type != "vm_update" || m.VM["uuid"] != vmA {
			t.Fatalf("%+v", m)
		}
	}
	g.update(t, vmB, userB, 1, "Running")
	if m := read(t, other); m.Type != "vm_update" || m.VM["uuid"] != vmB {
		t.Fatalf("%+v", m)
	}
	// A socket that ends frees its place: no one else is closed for the next one.
	_ = second.Close()
	deadline := time.Now().Add(3 * time.Second)
	for g.hub.Clients() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fourth, _ := g.connect(t, tokenA)
	g.update(t, vmA, userA, 2, "Stopped")
	for _, conn := range []*websocket.Conn{third, fourth} {
		if m := read(t, conn); m.Type != "vm_update" || m.Seq != 2 {
			t.Fatalf("%+v", m)
		}
	}
}

func TestVMStatus_MaxPerUser_ParallelConnectsLeaveExactlyTheLimit(t *testing.T) {
	const dials, limit = 25, porthttp.DefaultMaxPerUser
	g := startLiveGateway(t, liveOptions{}) // MaxPerUser 0: the default, 20
	token := g.issuer.Token(t, userA, authn.RoleUser)

	type ending struct {
		conn int
		err  error
	}
	ended := make(chan ending, dials)
	updated := make(chan int, dials)
	dialErrs := make(chan error, dials)
	start := make(chan struct{})
	var dialed sync.WaitGroup
	for i := range dials {
		dialed.Go(func() {
			<-start
			conn, _, err := websocket.DefaultDialer.Dial("ws://"+g.addr+porthttp.VMStatusPath+"?token="+token, nil)
			if err != nil {
				dialErrs <- err
				return
			}
			t.Cleanup(func() { _ = conn.Close() })
			go func() {
				for {
					_, raw, err := conn.ReadMessage()
					if err != nil {
						ended <- ending{i, err}
						return
					}
					var m message
					if json.Unmarshal(raw, &m) == nil && m.Type == "vm_update" {
						updated <- i
					}
				}
			}()
		})
	}
	close(start)
	dialed.Wait()
	close(dialErrs)
	for err := range dialErrs {
		t.Fatalf("dial: %v", err) // every new socket is accepted
	}

	closedConns := map[int]bool{}
	timeout := time.After(10 * time.Second)
	for len(closedConns) < dials-limit {
		select {
		case e := <-ended:
			var closed *websocket.CloseError
			if !errors.As(e.err, &closed) || closed.Code != websocket.ClosePolicyViolation || closed.Text != "Too many connections" {
				t.Fatalf("socket %d ended with %v", e.conn, e.err)
			}
			closedConns[e.conn] = true
		case <-timeout:
			t.Fatalf("%d sockets closed, want %d", len(closedConns), dials-limit)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.hub.Clients() != limit && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := g.hub.Clients(); n != limit {
		t.Fatalf("%d sockets subscribed, want %d", n, limit)
	}

	// Every remaining socket is alive and served.
	g.update(t, vmA, userA, 1, "Running")
	got := map[int]bool{}
	timeout = time.After(10 * time.Second)
	for len(got) < limit {
		select {
		case i := <-updated:
			if closedConns[i] {
				t.Fatalf("closed socket %d got an update", i)
			}
			got[i] = true
		case e := <-ended:
			t.Fatalf("socket %d ended too: %v", e.conn, e.err)
		case <-timeout:
			t.Fatalf("%d sockets got the update, want %d", len(got), limit)
		}
	}
	select {
	case e := <-ended:
		t.Fatalf("socket %d ended too: %v", e.conn, e.err)
	case <-time.After(200 * time.Millisecond):
	}
}
