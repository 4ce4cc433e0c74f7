package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"limen/gateway/internal/domain"
	"limen/libs/authn"
)

// An idle socket costs one goroutine, its reader: the writer runs only while there is something to
// send. Many sockets of one user all get the user's events.
func TestVMStatus_IdleSocketsHoldOneGoroutineEach(t *testing.T) {
	g := startLiveGateway(t, liveOptions{maxPerUser: 200})
	token := g.issuer.Token(t, userA, authn.RoleUser)
	before := runtime.NumGoroutine()
	const sockets = 100
	conns := make([]*websocket.Conn, sockets)
	for i := range conns {
		conns[i], _ = g.connect(t, token)
	}
	// The dialing side adds none (its sockets are read only when the test reads them); a few more are
	// the gateway's keep-alive connection to vm-service and the stand-in's.
	const most = sockets + sockets/4
	var idle int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if idle = runtime.NumGoroutine() - before; idle <= most || time.Now().After(deadline) {
			break
		}
	}
	if idle > most {
		t.Fatalf("%d idle sockets hold %d goroutines", sockets, idle)
	}
	g.update(t, vmA, userA, 1, "Running")
	for i, conn := range conns {
		if m := read(t, conn); m.Type != "vm_update" || m.VM["uuid"] != vmA {
			t.Fatalf("socket %d got %+v", i, m)
		}
	}
}

// failingLister is a vm-service that cannot list.
type failingLister struct{}

func (failingLister) ListVMs(context.Context, string, bool) (json.RawMessage, error) {
	return nil, errors.New("vm-service down")
}

func TestVMStatus_NoFirstListClosesWith1011(t *testing.T) {
	g := startLiveGateway(t, liveOptions{lister: failingLister{}})
	conn, _, err := g.dial(t, g.issuer.Token(t, userA, authn.RoleUser))
	if err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, conn, 5*time.Second); code != websocket.CloseInternalServerErr {
		t.Fatalf("closed with %d", code)
	}
}

// A burst reaches the client as it was published, however the writer puts its writes together:
// small frames and large ones (16- and 64-bit lengths, more than one write's worth), in order.
func TestVMStatus_BurstArrivesInOrder(t *testing.T) {
	g := startLiveGateway(t, liveOptions{queue: 1000})
	conn, _ := g.connect(t, g.issuer.Token(t, userB, authn.RoleUser))
	sizes := []int{0, 1, 100, 200, 70 << 10, 5, 65 << 10, 1000, 300 << 10}
	const events = 600
	for seq := int64(1); seq <= events; seq++ {
		vm := vmJSON(3, vmB, userB, "Running")
		vm["notes"] = strings.Repeat("x", sizes[int(seq)%len(sizes)])
		raw, _ := json.Marshal(vm)
		g.hub.Publish(domain.VMEvent{Kind: domain.VMUpdated, VMUUID: vmB, OwnerID: userB, Seq: seq, VM: raw})
	}
	for seq := int64(1); seq <= events; seq++ {
		m := read(t, conn)
		if m.Type != "vm_update" || m.Seq != seq || len(m.VM["notes"].(string)) != sizes[int(seq)%len(sizes)] {
			t.Fatalf("message %d: %s seq %d", seq, m.Type, m.Seq)
		}
	}
}

// The client's ping is answered with its data, and its close with its code.
func TestVMStatus_ClientPingAndCloseAreAnswered(t *testing.T) {
	g := startLiveGateway(t, liveOptions{})
	conn, _ := g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	errPong := errors.New("pong")
	var pong string
	conn.SetPongHandler(func(data string) error { pong = data; return errPong })
	if err := conn.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := conn.NextReader(); !errors.Is(err, errPong) || pong != "are you there" {
		t.Fatalf("pong %q, %v", pong, err)
	}

	conn, _ = g.connect(t, g.issuer.Token(t, userA, authn.RoleUser))
	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, conn, 5*time.Second); code != websocket.CloseNormalClosure {
		t.Fatalf("closed with %d", code)
	}
}

// A client that stops reading is cut when its queue fills, also when its messages are small and
// many go out in each write; a client that reads gets every one meanwhile.
func TestVMStatus_ClientThatStopsReadingSmallMessagesIsCut(t *testing.T) {
	g := startLiveGateway(t, liveOptions{queue: 8, writeWait: 500 * time.Millisecond})
	admin := g.issuer.Token(t, adminID, authn.RoleAdmin) + askAll
	stalled, _ := g.connect(t, admin)
	fast, _ := g.connect(t, admin)
	g.publishUntilOneIsLeft(t, fast, 2<<10, 20000)
	// What it had not read yet reaches it, then the end of the connection.
	_ = stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := stalled.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the cut client's connection stayed open")
			}
			break
		}
	}
}
