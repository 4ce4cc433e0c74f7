package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/telemetry"
	"limen/libs/web"
)

// whoApp answers /who with what web.ClientOf makes of the request; the test's requests come from
// 127.0.0.1.
func whoApp(t *testing.T, trusted ...string) string {
	t.Helper()
	app := web.NewApp(web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TrustedProxies: trusted})
	app.Get("/who", func(c *fiber.Ctx) error {
		client := web.ClientOf(c)
		if ip := web.ClientIP(c); ip != client.IP {
			t.Errorf("ClientIP %q, ClientOf %q", ip, client.IP)
		}
		return c.JSON(client)
	})
	return listen(t, app)
}

func listen(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String()
}

// who sends header lines (name, value pairs; a name may repeat) and returns the client the app saw.
func who(t *testing.T, base string, headers ...string) web.Client {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/who", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c web.Client
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientIP_WalksXForwardedForFromTheRightPastTrustedProxies(t *testing.T) {
	nobody := whoApp(t)
	loopback := whoApp(t, "127.0.0.1", "::1")
	chain := whoApp(t, " 127.0.0.1", "10.0.0.0/8 ")
	cases := []struct {
		name, base string
		xff        []string
		want       string
	}{
		{"no proxy trusted: the header is ignored", nobody, []string{"1.2.3.4"}, "127.0.0.1"},
		{"no proxy trusted: a chain is ignored", nobody, []string{"1.2.3.4, 10.0.0.2"}, "127.0.0.1"},
		{"trusted peer without the header is the client", loopback, nil, "127.0.0.1"},
		{"trusted peer names the client", loopback, []string{"1.2.3.4"}, "1.2.3.4"},
		{"spoofed leftmost entry is not believed", loopback, []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"spoofed entry on an earlier line is not believed", loopback, []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},
		{"trusted hops are skipped", chain, []string{"6.6.6.6, 1.2.3.4, 10.0.0.2, 10.1.2.3"}, "1.2.3.4"},
		{"a spoofed trusted address left of the client is not reached", chain, []string{"10.9.9.9, 1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		{"every hop trusted: the leftmost", chain, []string{"10.0.0.3,10.0.0.2"}, "10.0.0.3"},
		{"garbage left of the client is never read", loopback, []string{"<script>, 1.2.3.4"}, "1.2.3.4"},
		{"a malformed entry ends the walk at the last proxy", chain, []string{"1.2.3.4, unknown, 10.0.0.2"}, "10.0.0.2"},
		{"a malformed entry from the peer leaves the peer", loopback, []string{"1.2.3.4, not-an-ip"}, "127.0.0.1"},
		{"an empty entry is malformed", loopback, []string{"1.2.3.4, "}, "127.0.0.1"},
		{"IPv4 with a port", loopback, []string{"1.2.3.4:5678"}, "1.2.3.4"},
		{"IPv6", loopback, []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv6 with a port", loopback, []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"IPv4-mapped IPv6", chain, []string{"::ffff:1.2.3.4, ::ffff:10.0.0.2"}, "1.2.3.4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			for _, line := range tc.xff {
				headers = append(headers, "X-Forwarded-For", line)
			}
			if got := who(t, tc.base, headers...).IP; got != tc.want {
				t.Fatalf("X-Forwarded-For %q: client %q, want %q", tc.xff, got, tc.want)
			}
		})
	}
}

func TestClientOf_ProtoAndHostOnlyFromATrustedProxy(t *testing.T) {
	nobody := whoApp(t)
	loopback := whoApp(t, "127.0.0.1")
	chain := whoApp(t, "127.0.0.1", "10.0.0.0/8")
	cases := []struct {
		name, base          string
		headers             []string
		wantProto, wantHost string
	}{
		{"untrusted: ignored", nobody, []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example", "Host", "limen.example"}, "http", "limen.example"},
		{"trusted: believed", loopback, []string{"X-Forwarded-Proto", "HTTPS", "X-Forwarded-Host", "limen.example:8443", "Host", "internal:18443"}, "https", "limen.example:8443"},
		{"trusted, none sent: the request's own", loopback, []string{"Host", "limen.example"}, "http", "limen.example"},
		{"not a scheme", loopback, []string{"X-Forwarded-Proto", "javascript"}, "http", ""},
		{"not a host", loopback, []string{"X-Forwarded-Host", "evil.example/path", "Host", "limen.example"}, "http", "limen.example"},
		// One appending proxy: the client's own values are left of the proxy's and not taken.
		{"spoofed values left of the proxy's", loopback, []string{"X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https, http",
			"X-Forwarded-Host", "evil.example, limen.example"}, "http", "limen.example"},
		// Two appending proxies: the outer one (the client's) set the left value.
		{"two proxies: the client's hop", chain, []string{"X-Forwarded-For", "1.2.3.4, 10.0.0.2", "X-Forwarded-Proto", "https, http",
			"X-Forwarded-Host", "limen.example, gateway.internal"}, "https", "limen.example"},
		// Proxies that replace the headers leave one value, whoever set it.
		{"two proxies, replaced headers", chain, []string{"X-Forwarded-For", "1.2.3.4, 10.0.0.2", "X-Forwarded-Proto", "https"}, "https", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := who(t, tc.base, tc.headers...)
			if tc.wantHost == "" {
				tc.wantHost = strings.TrimPrefix(tc.base, "http://")
			}
			if got.Proto != tc.wantProto || got.Host != tc.wantHost {
				t.Fatalf("got %+v, want proto %q host %q", got, tc.wantProto, tc.wantHost)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := web.ParseTrustedProxies([]string{"127.0.0.1", " ::1", "10.1.2.3/8", "", "::ffff:192.0.2.1"})
	if err != nil || len(got) != 4 || got[2].String() != "10.0.0.0/8" || got[3].String() != "192.0.2.1/32" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"localhost", "10.0.0.0/33", "1.2.3.4:80", "*"} {
		if _, err := web.ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestSeparateInternal_MetricsAndReadyzOnlyOnTheInternalApp(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := web.AppConfig{Service: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Telemetry: tel,
		Checks: map[string]web.Check{"db": func(context.Context) error { return nil }}, SeparateInternal: true}
	public, internal := listen(t, web.NewApp(cfg)), listen(t, web.NewInternalApp(cfg))
	for _, path := range []string{"/metrics", "/readyz"} {
		if status, body := get(t, public+path); status != 404 || body != `{"code":404,"message":"Not found"}` {
			t.Errorf("public %s: %d %s", path, status, body)
		}
	}
	if status, _ := get(t, public+"/healthz"); status != 200 {
		t.Errorf("public /healthz: %d", status)
	}
	if status, body := get(t, internal+"/readyz"); status != 200 || !strings.Contains(body, `"db":"connected"`) {
		t.Errorf("internal /readyz: %d %s", status, body)
	}
	if status, body := get(t, internal+"/metrics"); status != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("internal /metrics: %d %.200s", status, body)
	}
	if status, _ := get(t, internal+"/healthz"); status != 200 {
		t.Errorf("internal /healthz: %d", status)
	}
	if status, _ := get(t, internal+"/api/anything"); status != 404 {
		t.Errorf("internal app serves more: %d", status)
	}

	// Without the option, every service keeps them on its one app.
	cfg.SeparateInternal = false
	single := listen(t, web.NewApp(cfg))
	for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
		if status, _ := get(t, single+path); status != 200 {
			t.Errorf("single app %s: %d", path, status)
		}
	}
}

func TestServeAll_ServesEveryAppAndDrainsThemAll(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var apps []web.Listening
	for range 2 {
		app := web.NewApp(web.AppConfig{Service: "test", Logger: log})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		apps = append(apps, web.Listening{App: app, Listener: ln})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- web.ServeAll(ctx, time.Second, log, apps...) }()
	for _, a := range apps {
		if status, _ := get(t, "http://"+a.Listener.Addr().String()+"/healthz"); status != 200 {
			t.Fatalf("%s: %d", a.Listener.Addr(), status)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeAll did not return")
	}
	for _, a := range apps {
		if _, err := net.DialTimeout("tcp", a.Listener.Addr().String(), time.Second); err == nil {
			t.Errorf("%s still accepts", a.Listener.Addr())
		}
	}
}
