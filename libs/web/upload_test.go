package web_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/testkit/memtest"
	"limen/libs/web"
)

const uploadLimit = 128 << 20

// startStreaming serves an app with streamed uploads on POST /upload (UploadBody, 128 MiB cap), an
// ordinary JSON route and an upload route whose handler refuses without reading.
func startStreaming(t *testing.T, stream bool) string {
	t.Helper()
	app := web.NewApp(web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StreamRequestBody: stream, Upload: func(c *fiber.Ctx) bool {
			return web.UploadRoute(fiber.MethodPost, "/upload")(c) || web.UploadRoute(fiber.MethodPost, "/refuse")(c)
		}})
	upload := func(c *fiber.Ctx) error {
		body, size, err := web.UploadBody(c, uploadLimit)
		if err != nil {
			return err
		}
		hash := sha256.New()
		n, err := io.CopyBuffer(hash, body, make([]byte, 32<<10))
		if err != nil {
			return &web.Error{Code: 400, Message: "upload failed", Detail: err.Error()}
		}
		return c.JSON(fiber.Map{"size": size, "bytes": n, "sha256": hex.EncodeToString(hash.Sum(nil))})
	}
	app.Post("/upload", upload)
	app.Post("/unmarked", upload)
	app.Post("/refuse", func(c *fiber.Ctx) error { return web.NewError(403, "Admin access required") })
	app.Post("/things", func(c *fiber.Ctx) error {
		var in createThing
		if err := web.DecodeJSON(c, &in); err != nil {
			return err
		}
		return c.Status(201).JSON(in)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return ln.Addr().String()
}

func TestUploadBody_Streams64MiBWithFlatMemory(t *testing.T) {
	addr := startStreaming(t, true)
	const size = 64 << 20
	want := sha256.New()
	_, _ = io.Copy(want, memtest.Pattern(size))

	w := memtest.Watch()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/upload", memtest.Pattern(size))
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Size, Bytes int64
		SHA256      string
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	peak, allocated := w.End()
	t.Logf("64 MiB upload: peak HeapInuse growth %.1f MiB, allocated %.1f MiB", float64(peak)/(1<<20), float64(allocated)/(1<<20))

	if resp.StatusCode != 200 || got.Size != size || got.Bytes != size || got.SHA256 != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("%d %+v", resp.StatusCode, got)
	}
	if peak > 16<<20 || allocated > 16<<20 {
		t.Fatalf("memory grew with the body: peak HeapInuse +%d, allocated %d", peak, allocated)
	}

	// The connection is reusable after a fully read upload.
	resp, err = http.Post("http://"+addr+"/things", "application/json", strings.NewReader(`{"name":"abcd","count":1}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("after upload: %v %v", resp, err)
	}
	resp.Body.Close()
}

// raw sends a hand-written request and returns the response, its JSON body and whether the server
// closed the connection after it.
func raw(t *testing.T, addr, request string, body io.Reader, closeWrite bool) (*http.Response, map[string]any, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		_, _ = io.Copy(conn, body)
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = br.ReadByte()
	return resp, m, err == io.EOF
}

func TestUploadBody_RefusesBeforeReading(t *testing.T) {
	addr := startStreaming(t, true)
	// Over the cap: answered from the headers, though only the first 64 KiB of the body are ever sent
	// (fasthttp waits for the first min(8 KiB, Content-Length, BodyLimit) body bytes before calling
	// the handler).
	resp, body, closed := raw(t, addr, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", uploadLimit+1), memtest.Pattern(64<<10), false)
	if resp.StatusCode != 413 || body["code"] != float64(413) || body["message"] != "Request body too large" || body["error"] != "the limit is 128 MiB" || !closed {
		t.Fatalf("over the cap: %d %v closed=%v", resp.StatusCode, body, closed)
	}
	// No Content-Length (chunked): 411.
	resp, body, _ = raw(t, addr, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", strings.NewReader("5\r\nhello\r\n0\r\n\r\n"), false)
	if resp.StatusCode != 411 || body["code"] != float64(411) || body["message"] != "Content-Length required" {
		t.Fatalf("chunked: %d %v", resp.StatusCode, body)
	}
	// No body at all: 400.
	resp, body, _ = raw(t, addr, "POST /upload HTTP/1.1\r\nHost: x\r\n\r\n", nil, false)
	if resp.StatusCode != 400 || body["code"] != float64(400) || body["message"] != "Request body is required" {
		t.Fatalf("empty: %d %v", resp.StatusCode, body)
	}
	// A handler that refuses without reading closes the connection, so the unread body is never
	// taken for the next request.
	resp, body, closed = raw(t, addr, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n", memtest.Pattern(64<<10), false)
	if resp.StatusCode != 403 || body["message"] != "Admin access required" || !closed {
		t.Fatalf("refused: %d %v closed=%v", resp.StatusCode, body, closed)
	}
}

func TestUploadBody_ClientGoneEarlyIsNotACompleteBody(t *testing.T) {
	addr := startStreaming(t, true)
	resp, body, _ := raw(t, addr, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n", memtest.Pattern(100<<10), true)
	if resp.StatusCode != 400 || !strings.Contains(fmt.Sprint(body["error"]), "unexpected EOF") {
		t.Fatalf("truncated: %d %v", resp.StatusCode, body)
	}
}

func TestStreaming_OrdinaryRoutesKeepTheBodyLimit(t *testing.T) {
	addr := startStreaming(t, true)
	big := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`
	post := func(body io.Reader, length int64) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/things", body)
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	w := memtest.Watch()
	status, body := post(strings.NewReader(big), int64(len(big)))
	if status != 413 || body["code"] != float64(413) || body["message"] != "Request body too large" {
		t.Fatalf("2 MiB JSON: %d %v", status, body)
	}
	// Chunked, so no Content-Length to refuse it by: the guard stops reading past the limit.
	status, body = post(io.MultiReader(strings.NewReader(big)), -1)
	if status != 413 || body["code"] != float64(413) {
		t.Fatalf("2 MiB chunked JSON: %d %v", status, body)
	}
	// 32 MiB sent in full by a client that does not wait for an answer: it still reads the 413 (the
	// server drains instead of resetting the connection).
	status, body = post(memtest.Pattern(32<<20), 32<<20)
	if status != 413 || body["code"] != float64(413) {
		t.Fatalf("32 MiB: %d %v", status, body)
	}
	// An UploadBody handler on a route the Upload predicate does not mark: the limit holds.
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/unmarked", memtest.Pattern(2<<20))
	req.ContentLength = 2 << 20
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("unmarked upload route: %d", resp.StatusCode)
	}
	// "/UPLOAD/" is /upload for Fiber's router and for UploadRoute alike.
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/UPLOAD/", memtest.Pattern(2<<20))
	req.ContentLength = 2 << 20
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/UPLOAD/: %d", resp.StatusCode)
	}
	peak, _ := w.End()
	t.Logf("refusing oversized bodies: peak HeapInuse growth %.1f MiB", float64(peak)/(1<<20))

	// Small bodies, with a length or chunked, reach the handler whole.
	if status, body := post(strings.NewReader(`{"name":"abcd","count":2}`), -1); status != 201 || body["name"] != "abcd" {
		t.Fatalf("chunked small JSON: %d %v", status, body)
	}
	padded := `{"name":"abcd","count":3,"pad":"` + strings.Repeat("x", 100<<10) + `"}`
	if status, body := post(strings.NewReader(padded), int64(len(padded))); status != 201 || body["count"] != float64(3) {
		t.Fatalf("100 KiB JSON: %d %v", status, body)
	}
}

func TestUploadBody_WithoutStreamingServesTheBufferedBody(t *testing.T) {
	addr := startStreaming(t, false)
	resp, err := http.Post("http://"+addr+"/upload", "application/octet-stream", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&got)
	sum := sha256.Sum256([]byte("hello"))
	if resp.StatusCode != 200 || got["bytes"] != float64(5) || got["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("%d %v", resp.StatusCode, got)
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 1 << 20: "1 MiB", 16 << 30: "16 GiB", 3 << 29: "1.5 GiB", 1<<30 + 1<<20: "1 GiB", 1536: "1.5 KiB"} {
		if got := web.ByteSize(n); got != want {
			t.Errorf("ByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
