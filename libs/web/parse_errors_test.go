package web_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
)

// rawExchange writes request bytes to the app over a real socket and returns its answer, unparsed by any client
// that might tidy it.
func rawExchange(t *testing.T, app *fiber.App, request string) (*http.Response, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may answer (and close) before it has read everything; a failed write is fine then.
	go func() { _, _ = io.WriteString(conn, request) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// A request fasthttp cannot parse is answered with the contract's error body, never with the bytes it
// was sent (which could carry another header's token into a page that shows the answer).
func TestParserErrors_AnswerTheContractBodyWithoutEchoingTheRequest(t *testing.T) {
	const marker = "SECRET-MARKER-hunter2"
	huge := strings.Repeat("a", 64<<10)
	cases := []struct {
		name, request string
		status        int
		message       string
	}{
		{"header line without colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + marker + "\r\n" + marker + "-no-colon\r\n\r\n", 400, "Bad request"},
		{"bad request line", "GET\x01/" + marker + " HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"},
		{"bad content length", "POST /things HTTP/1.1\r\nHost: x\r\nX-Note: " + marker + "\r\nContent-Length: " + marker + "\r\n\r\n", 400, "Bad request"},
		{"control byte in the target", "GET /healthz?" + marker + "\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Bad request"},
		{"huge header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: " + marker + huge + "\r\n\r\n", 431, "Request header fields too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, newApp(nil), tc.request)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if strings.Contains(body, marker) || strings.Contains(body, "aaaaaaaa") {
				t.Fatalf("the answer echoes the request: %.300s", body)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("not JSON: %.300s", body)
			}
			if got["code"] != float64(tc.status) || got["message"] != tc.message || len(got) != 2 {
				t.Fatalf("body %s", body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
		})
	}
}

// A body over the limit is still 413 with the contract's message (fasthttp reports it through the same
// path as a parser error when the body is read before the handler).
func TestParserErrors_BodyTooLargeStays413(t *testing.T) {
	resp, body := rawExchange(t, newApp(nil), "POST /things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("b", 100))
	if resp.StatusCode != 413 || body != `{"code":413,"message":"Request body too large"}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// The internal listener's app answers the same way.
func TestParserErrors_InternalAppToo(t *testing.T) {
	app := web.NewInternalApp(web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	resp, body := rawExchange(t, app, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Secret: hunter2\r\nno colon\r\n\r\n")
	if resp.StatusCode != 400 || body != `{"code":400,"message":"Bad request"}` {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
