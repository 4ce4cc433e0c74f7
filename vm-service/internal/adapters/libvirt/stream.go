package libvirt

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"

	"limen/libs/libvirtconn"
)

// libvirt's RPC: the remote program, its version, and the procedure that opens a console stream.
const (
	remoteProgram         = 0x20008086
	remoteVersion         = 1
	procDomainOpenConsole = 201
	// headerSize is a packet's length word and header.
	headerSize = 28
)

// StreamDialer is how a console stream reaches the libvirt at uri (sock: the unix socket of a
// local one, "" for the URI's or libvirt's default) and what to open there: the same transports the
// service's own connection supports.
func StreamDialer(uri, sock string) (socket.Dialer, golibvirt.ConnectURI, error) {
	return libvirtconn.Dialer(uri, sock, consoleOpenTimeout)
}

// errTapClosed is a write to a stream connection that has been closed.
var errTapClosed = errors.New("console connection closed")

// tapDialer dials one connection through Dialer, follows the packets crossing it both ways
// (onPacket, called from the goroutine that moves them) and sends packets of its own on it between
// go-libvirt's.
type tapDialer struct {
	socket.Dialer
	onPacket func(out bool, h socket.Header)

	mu      sync.Mutex // one writer at a time, so packets never interleave
	conn    net.Conn
	closed  bool
	in, out packetScanner
}

func (t *tapDialer) Dial() (net.Conn, error) {
	conn, err := t.Dialer.Dial()
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		conn.Close()
		return nil, errTapClosed
	}
	t.conn = conn
	return &tappedConn{Conn: conn, tap: t}, nil
}

// close ends the connection (also one still being dialled, once it is).
func (t *tapDialer) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.conn != nil {
		t.conn.Close()
	}
}

// send writes one whole packet.
func (t *tapDialer) send(h socket.Header, payload []byte) error {
	packet := make([]byte, headerSize+len(payload))
	for i, v := range []uint32{uint32(len(packet)), h.Program, h.Version, h.Procedure, h.Type, uint32(h.Serial), h.Status} {
		binary.BigEndian.PutUint32(packet[4*i:], v)
	}
	copy(packet[headerSize:], payload)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.conn == nil {
		return errTapClosed
	}
	t.out.feed(packet, nil)
	// A libvirtd that takes nothing for this long is gone; the session ends rather than hang.
	_ = t.conn.SetWriteDeadline(time.Now().Add(consoleOpenTimeout))
	_, err := t.conn.Write(packet)
	_ = t.conn.SetWriteDeadline(time.Time{})
	return err
}

type tappedConn struct {
	net.Conn
	tap *tapDialer
}

func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.tap.in.feed(p[:n], func(h socket.Header) { c.tap.onPacket(false, h) })
	return n, err
}

func (c *tappedConn) Write(p []byte) (int, error) {
	c.tap.mu.Lock()
	defer c.tap.mu.Unlock()
	c.tap.out.feed(p, func(h socket.Header) { c.tap.onPacket(true, h) })
	return c.Conn.Write(p)
}

// packetScanner finds the headers in a stream of libvirt RPC packets, however the stream is cut.
type packetScanner struct {
	head [headerSize]byte
	have int
	skip uint32
}

func (s *packetScanner) feed(p []byte, emit func(socket.Header)) {
	for len(p) > 0 {
		if s.skip > 0 {
			n := min(uint32(len(p)), s.skip)
			s.skip -= n
			p = p[n:]
			continue
		}
		n := copy(s.head[s.have:], p)
		s.have += n
		p = p[n:]
		if s.have < headerSize {
			return
		}
		s.have = 0
		word := func(i int) uint32 { return binary.BigEndian.Uint32(s.head[4*i:]) }
		if length := word(0); length > headerSize {
			s.skip = length - headerSize
		}
		if emit != nil {
			emit(socket.Header{Program: word(1), Version: word(2), Procedure: word(3), Type: word(4),
				Serial: int32(word(5)), Status: word(6)})
		}
	}
}
