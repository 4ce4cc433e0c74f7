package e2e_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fasthttp/websocket"
)

// wsStream is a WebSocket as a byte stream: binary frames in and out, as noVNC uses it.
type wsStream struct {
	conn *websocket.Conn
	r    io.Reader
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			_, r, err := s.conn.NextReader()
			if err != nil {
				return 0, err
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	return len(p), s.conn.WriteMessage(websocket.BinaryMessage, p)
}

// dialConsole opens a console socket as noVNC does (subprotocol binary); on a refused upgrade it
// answers the status and body.
func dialConsole(url string) (*websocket.Conn, int, string, error) {
	d := websocket.Dialer{Subprotocols: []string{"binary"}, HandshakeTimeout: 30 * time.Second}
	conn, resp, err := d.Dial(url, nil)
	if err == nil {
		if p := conn.Subprotocol(); p != "binary" {
			conn.Close()
			return nil, 0, "", fmt.Errorf("subprotocol %q, want binary", p)
		}
		return conn, http.StatusSwitchingProtocols, "", nil
	}
	if resp == nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return nil, resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// rfb is a minimal RFB 3.8 client: no authentication, the server's pixel format, raw encoding.
type rfb struct {
	r             *bufio.Reader
	w             io.Writer
	width, height int
	bytesPerPixel int
	name          string
}

func rfbHandshake(rw io.ReadWriter) (*rfb, error) {
	c := &rfb{r: bufio.NewReaderSize(rw, 1<<20), w: rw}
	version := make([]byte, 12)
	if _, err := io.ReadFull(c.r, version); err != nil {
		return nil, err
	}
	if string(version) != "RFB 003.008\n" {
		return nil, fmt.Errorf("server version %q", version)
	}
	if _, err := c.w.Write([]byte("RFB 003.008\n")); err != nil {
		return nil, err
	}
	n, err := c.r.ReadByte()
	if err != nil {
		return nil, err
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(c.r, types); err != nil {
		return nil, err
	}
	if !strings.Contains(string(types), "\x01") {
		return nil, fmt.Errorf("security types %v offer no 'none'", types)
	}
	if _, err := c.w.Write([]byte{1}); err != nil {
		return nil, err
	}
	var result uint32
	if err := binary.Read(c.r, binary.BigEndian, &result); err != nil || result != 0 {
		return nil, fmt.Errorf("security result %d, %v", result, err)
	}
	if _, err := c.w.Write([]byte{1}); err != nil { // ClientInit: shared
		return nil, err
	}
	var init struct {
		Width, Height uint16
		PixelFormat   [16]byte
		NameLength    uint32
	}
	if err := binary.Read(c.r, binary.BigEndian, &init); err != nil {
		return nil, err
	}
	name := make([]byte, init.NameLength)
	if _, err := io.ReadFull(c.r, name); err != nil {
		return nil, err
	}
	c.width, c.height, c.bytesPerPixel, c.name = int(init.Width), int(init.Height), int(init.PixelFormat[0])/8, string(name)
	// SetEncodings: raw only.
	if _, err := c.w.Write([]byte{2, 0, 0, 1, 0, 0, 0, 0}); err != nil {
		return nil, err
	}
	return c, nil
}

// request asks for the whole screen (all of it, or what changed with incremental).
func (c *rfb) request(incremental bool) error {
	msg := []byte{3, 0, 0, 0, 0, 0, byte(c.width >> 8), byte(c.width), byte(c.height >> 8), byte(c.height)}
	if incremental {
		msg[1] = 1
	}
	_, err := c.w.Write(msg)
	return err
}

// update reads messages up to the next framebuffer update, whose pixels it answers (raw, each rectangle
// in turn) with the number of bytes that carried them.
func (c *rfb) update() (pixels []byte, wire int, err error) {
	for {
		kind, err := c.r.ReadByte()
		if err != nil {
			return nil, 0, err
		}
		switch kind {
		case 0: // FramebufferUpdate
			var head struct {
				Pad   byte
				Rects uint16
			}
			if err := binary.Read(c.r, binary.BigEndian, &head); err != nil {
				return nil, 0, err
			}
			wire = 4
			for range head.Rects {
				var rect struct {
					X, Y, W, H uint16
					Encoding   int32
				}
				if err := binary.Read(c.r, binary.BigEndian, &rect); err != nil {
					return nil, 0, err
				}
				if rect.Encoding != 0 {
					return nil, 0, fmt.Errorf("encoding %d, asked for raw only", rect.Encoding)
				}
				data := make([]byte, int(rect.W)*int(rect.H)*c.bytesPerPixel)
				if _, err := io.ReadFull(c.r, data); err != nil {
					return nil, 0, err
				}
				pixels = append(pixels, data...)
				wire += 12 + len(data)
			}
			return pixels, wire, nil
		case 2: // Bell
		case 3: // ServerCutText
			var head struct {
				Pad    [3]byte
				Length uint32
			}
			if err := binary.Read(c.r, binary.BigEndian, &head); err != nil {
				return nil, 0, err
			}
			if _, err := c.r.Discard(int(head.Length)); err != nil {
				return nil, 0, err
			}
		default:
			return nil, 0, fmt.Errorf("server message %d", kind)
		}
	}
}

// colours counts the distinct pixel values of a raw frame, up to limit.
func colours(pixels []byte, bytesPerPixel, limit int) int {
	seen := map[string]bool{}
	for i := 0; i+bytesPerPixel <= len(pixels) && len(seen) < limit; i += bytesPerPixel {
		seen[string(pixels[i:i+bytesPerPixel])] = true
	}
	return len(seen)
}
