package libvirt

import (
	"context"
	"crypto/des"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A display on TCP (DisplayListen) asks for a password that only LIMEN knows: vm-service answers
// QEMU's challenge itself (RFB's VNC authentication), then offers its client the display without
// authentication, on the ticket's strength alone, and carries the rest of the RFB stream as it is.

const rfbVersion = "RFB 003.008\n"

// RFB security types.
const (
	rfbSecurityNone = 1
	rfbSecurityVNC  = 2
)

// dialPasswordDisplay connects to the display at addr and authenticates with password; the stream
// returned starts where a display without authentication would (the RFB greeting), so the client
// sees no difference.
func dialPasswordDisplay(ctx context.Context, addr, password string) (io.ReadWriteCloser, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if err := rfbAuthenticate(conn, password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("display at %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	near, far := net.Pipe()
	go func() {
		defer conn.Close()
		defer far.Close()
		// The client has as long as any RFB client needs to say its version and choose.
		_ = far.SetDeadline(time.Now().Add(consoleOpenTimeout))
		if err := rfbOfferNone(far); err != nil {
			return
		}
		_ = far.SetDeadline(time.Time{})
		go func() { _, _ = io.Copy(conn, far); _ = conn.Close() }()
		_, _ = io.Copy(far, conn)
	}()
	return near, nil
}

// rfbAuthenticate is the client's side of RFB 3.8's handshake up to a successful SecurityResult, with
// VNC authentication (or none, when the server asks for none).
func rfbAuthenticate(conn net.Conn, password string) error {
	version := make([]byte, len(rfbVersion))
	if _, err := io.ReadFull(conn, version); err != nil {
		return err
	}
	if string(version[:4]) != "RFB " {
		return errors.New("not an RFB server")
	}
	if _, err := conn.Write([]byte(rfbVersion)); err != nil {
		return err
	}
	var count [1]byte
	if _, err := io.ReadFull(conn, count[:]); err != nil {
		return err
	}
	if count[0] == 0 {
		return rfbFailure(conn)
	}
	types := make([]byte, count[0])
	if _, err := io.ReadFull(conn, types); err != nil {
		return err
	}
	chosen := byte(0)
	for _, t := range types {
		if t == rfbSecurityVNC || t == rfbSecurityNone && chosen == 0 {
			chosen = t
		}
	}
	if chosen == 0 {
		return fmt.Errorf("offers security types %v, neither VNC authentication nor none", types)
	}
	if _, err := conn.Write([]byte{chosen}); err != nil {
		return err
	}
	if chosen == rfbSecurityVNC {
		challenge := make([]byte, 16)
		if _, err := io.ReadFull(conn, challenge); err != nil {
			return err
		}
		if _, err := conn.Write(vncResponse(password, challenge)); err != nil {
			return err
		}
	}
	var result [4]byte
	if _, err := io.ReadFull(conn, result[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(result[:]) != 0 {
		return rfbFailure(conn)
	}
	return nil
}

// rfbFailure reads the reason that follows a refusal.
func rfbFailure(conn net.Conn) error {
	var n [4]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		return errors.New("refused")
	}
	reason := make([]byte, min(binary.BigEndian.Uint32(n[:]), 1024))
	_, _ = io.ReadFull(conn, reason)
	return fmt.Errorf("refused: %s", reason)
}

// vncResponse encrypts the challenge with the password as VNC authentication does: DES, the key the
// password's first 8 bytes with each byte's bits mirrored.
func vncResponse(password string, challenge []byte) []byte {
	key := make([]byte, 8)
	copy(key, password)
	for i, b := range key {
		var m byte
		for bit := range 8 {
			if b&(1<<bit) != 0 {
				m |= 0x80 >> bit
			}
		}
		key[i] = m
	}
	block, _ := des.NewCipher(key) // 8 bytes: never an error
	out := make([]byte, 16)
	block.Encrypt(out[:8], challenge[:8])
	block.Encrypt(out[8:], challenge[8:16])
	return out
}

// rfbOfferNone is the server's side of the handshake with no authentication, for RFB 3.3, 3.7 and
// 3.8 clients; what follows is the client's ClientInit.
func rfbOfferNone(conn net.Conn) error {
	if _, err := conn.Write([]byte(rfbVersion)); err != nil {
		return err
	}
	version := make([]byte, len(rfbVersion))
	if _, err := io.ReadFull(conn, version); err != nil {
		return err
	}
	switch string(version) {
	case "RFB 003.003\n":
		_, err := conn.Write([]byte{0, 0, 0, rfbSecurityNone})
		return err
	case "RFB 003.007\n", "RFB 003.008\n":
	default:
		return fmt.Errorf("client speaks %q", version)
	}
	if _, err := conn.Write([]byte{1, rfbSecurityNone}); err != nil {
		return err
	}
	var chosen [1]byte
	if _, err := io.ReadFull(conn, chosen[:]); err != nil {
		return err
	}
	if chosen[0] != rfbSecurityNone {
		return fmt.Errorf("client chose security type %d", chosen[0])
	}
	if string(version) == "RFB 003.007\n" {
		return nil
	}
	_, err := conn.Write([]byte{0, 0, 0, 0})
	return err
}
