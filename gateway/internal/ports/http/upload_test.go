package http_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/gateway/internal/domain"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/testkit/memtest"
	"limen/libs/web"
)

// isoService stands in for media-service: it hashes what it receives on POST /api/vms/isos and
// counts every request that reaches it.
type isoService struct {
	*httptest.Server
	contacts atomic.Int64
	// refuse answers 400 at once, without reading the body, as a service refusing a bad name would.
	refuse atomic.Bool
}

func newISOService(t *testing.T) *isoService {
	t.Helper()
	s := &isoService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte(`{"status":"ok"}`))
			return
		}
		s.contacts.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if s.refuse.Load() {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":400,"message":"Invalid ISO name"}`))
			return
		}
		hash := sha256.New()
		n, err := io.CopyBuffer(hash, r.Body, make([]byte, 64<<10))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]any{"code": 400, "message": err.Error()})
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"bytes": n, "sha256": hex.EncodeToString(hash.Sum(nil)), "uri": r.RequestURI,
			"content_length": r.ContentLength, "transfer_encoding": r.TransferEncoding,
			"authorization": r.Header.Get("Authorization"), "request_id": r.Header.Get("X-Request-ID"),
			"forwarded_for": r.Header.Get("X-Forwarded-For"), "expect": r.Header.Get("Expect"),
			"user_role": r.Header.Get("X-User-Role"),
		})
	}))
	t.Cleanup(s.Close)
	return s
}

// upload posts size bytes (length -1: chunked) to the gateway's upload route.
func (g gateway) upload(t *testing.T, token string, body io.Reader, length int64, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, g.url+"/api/vms/isos?name=debian.iso", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/octet-stream")
	return send(t, req, token, headers...)
}

func TestUpload_256MiBStreamsThroughWithFlatMemory(t *testing.T) {
	media := newISOService(t)
	g := startGatewayWith(t, map[domain.Upstream]string{domain.UpstreamMedia: media.URL}, 1<<20, nil)
	token := g.issuer.Token(t, 1, authn.RoleAdmin)
	const size = 256 << 20
	want := memtest.PatternSHA256(size)

	w := memtest.Watch()
	start := time.Now()
	r := g.upload(t, token, memtest.Pattern(size), size, "X-Request-ID", "upload-1", "Expect", "100-continue", "X-User-Role", "admin")
	elapsed := time.Since(start)
	peak, allocated := w.End()
	t.Logf("256 MiB through the gateway in %s: peak HeapInuse growth %.1f MiB, allocated %.1f MiB",
		elapsed.Round(time.Millisecond), float64(peak)/(1<<20), float64(allocated)/(1<<20))

	if r.status != 201 || r.body["bytes"] != float64(size) || r.body["sha256"] != want {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r.body["content_length"] != float64(size) || r.body["transfer_encoding"] != nil || r.body["uri"] != "/api/vms/isos?name=debian.iso" {
		t.Errorf("forwarded framing: %s", r.raw)
	}
	if r.body["authorization"] != "Bearer "+token || r.body["request_id"] != "upload-1" || r.header.Get("X-Request-ID") != "upload-1" ||
		r.body["forwarded_for"] != "127.0.0.1" || r.body["expect"] != "" || r.body["user_role"] != "" {
		t.Errorf("forwarded headers: %s", r.raw)
	}
	if peak > 32<<20 {
		t.Fatalf("gateway memory grew with the body: peak HeapInuse +%d bytes", peak)
	}
	if allocated > 64<<20 {
		t.Fatalf("allocated %d bytes for a %d byte body", allocated, size)
	}
}

func TestUpload_RefusedAtTheEdgeWithoutContactingTheService(t *testing.T) {
	media := newISOService(t)
	g := startGatewayWith(t, map[domain.Upstream]string{domain.UpstreamMedia: media.URL, domain.UpstreamVM: media.URL}, 1<<20,
		func(p *porthttp.Proxy) { p.UploadLimit = 32 << 20 })
	admin := g.issuer.Token(t, 1, authn.RoleAdmin)

	cases := []struct {
		name    string
		do      func() reply
		status  int
		message string
	}{
		{"over the upload limit", func() reply { return g.upload(t, admin, memtest.Pattern(32<<20+1), 32<<20+1) }, 413, "Request body too large"},
		{"no token", func() reply { return g.upload(t, "", memtest.Pattern(4<<20), 4<<20) }, 401, "Authentication required"},
		{"forged token", func() reply { return g.upload(t, "abc.def.ghi", memtest.Pattern(4<<20), 4<<20) }, 401, "Authentication required"},
		{"not an admin", func() reply {
			return g.upload(t, g.issuer.Token(t, 7, authn.RoleUser), memtest.Pattern(4<<20), 4<<20)
		}, 403, "Admin access required"},
		{"no Content-Length", func() reply { return g.upload(t, admin, io.MultiReader(memtest.Pattern(4<<20)), -1) }, 411, "Content-Length required"},
		{"empty", func() reply { return g.upload(t, admin, http.NoBody, 0) }, 400, "Request body is required"},
		{"ordinary 2 MiB JSON", func() reply {
			return g.do(t, "POST", "/api/vms", admin, `{"name":"`+strings.Repeat("a", 2<<20)+`"}`)
		}, 413, "Request body too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			if r.status != tc.status || r.body["code"] != float64(tc.status) || r.body["message"] != tc.message {
				t.Fatalf("%d %s", r.status, r.raw)
			}
		})
	}
	if n := media.contacts.Load(); n != 0 {
		t.Fatalf("the service was contacted %d times", n)
	}
	// The limit is inclusive, and ordinary bodies within 1 MiB still pass.
	if r := g.upload(t, admin, memtest.Pattern(32<<20), 32<<20); r.status != 201 || r.body["bytes"] != float64(32<<20) {
		t.Fatalf("at the limit: %d %s", r.status, r.raw)
	}
	if r := g.do(t, "POST", "/api/vms", admin, `{"name":"`+strings.Repeat("a", 900<<10)+`"}`); r.status != 201 {
		t.Fatalf("900 KiB JSON: %d %s", r.status, r.raw)
	}
}

func TestUpload_ServiceAnswersAndFailures(t *testing.T) {
	media := newISOService(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	g := startGatewayWith(t, map[domain.Upstream]string{domain.UpstreamMedia: media.URL}, 1<<20, nil)
	admin := g.issuer.Token(t, 1, authn.RoleAdmin)

	// A service that refuses at once, without reading the body, and closes the connection: its
	// answer reaches the client, not a broken pipe.
	media.refuse.Store(true)
	for _, size := range []int64{100 << 10, 64 << 20} {
		if r := g.upload(t, admin, memtest.Pattern(size), size); r.status != 400 || r.body["message"] != "Invalid ISO name" {
			t.Errorf("refused %d byte upload: %d %s", size, r.status, r.raw)
		}
	}
	// The same from a service built like media-service (libs/web, streamed uploads).
	fiberMedia := web.NewApp(web.AppConfig{Service: "media", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StreamRequestBody: true, Upload: web.UploadRoute(fiber.MethodPost, "/api/vms/isos")})
	fiberMedia.Post("/api/vms/isos", func(c *fiber.Ctx) error {
		if c.Query("name") != "ok.iso" {
			return web.NewError(400, "Invalid ISO name")
		}
		body, _, err := web.UploadBody(c, 1<<30)
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, body)
		if err != nil {
			return err
		}
		return c.Status(201).JSON(fiber.Map{"bytes": n})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fiberMedia.Listener(ln) }()
	defer func() { _ = fiberMedia.Shutdown() }()
	viaFiber := startGatewayWith(t, map[domain.Upstream]string{domain.UpstreamMedia: "http://" + ln.Addr().String()}, 1<<20, nil)
	admin = viaFiber.issuer.Token(t, 1, authn.RoleAdmin)
	if r := viaFiber.upload(t, admin, memtest.Pattern(64<<20), 64<<20); r.status != 400 || r.body["message"] != "Invalid ISO name" {
		t.Errorf("refused by a fiber service: %d %s", r.status, r.raw)
	}
	req, _ := http.NewRequest(http.MethodPost, viaFiber.url+"/api/vms/isos?name=ok.iso", memtest.Pattern(64<<20))
	req.ContentLength = 64 << 20
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(raw) != `{"bytes":67108864}` {
		t.Errorf("accepted by a fiber service: %d %s", resp.StatusCode, raw)
	}

	down := startGatewayWith(t, map[domain.Upstream]string{domain.UpstreamMedia: deadURL}, 1<<20, nil)
	if r := down.upload(t, down.issuer.Token(t, 1, authn.RoleAdmin), memtest.Pattern(8<<20), 8<<20); r.status != 502 {
		t.Errorf("service down: %d %s", r.status, r.raw)
	}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(2 * time.Second)
	}))
	defer slow.Close()
	timeout := startGatewayWith(t, map[domain.Upstream]string{domain.UpstreamMedia: slow.URL}, 1<<20,
		func(p *porthttp.Proxy) { p.UploadTimeout = 500 * time.Millisecond })
	if r := timeout.upload(t, timeout.issuer.Token(t, 1, authn.RoleAdmin), memtest.Pattern(1<<20), 1<<20); r.status != 504 {
		t.Errorf("slow service: %d %s", r.status, r.raw)
	}
}
