package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"limen/gateway/internal/domain"
	"limen/libs/authn"
)

// from sends the request from the local address ip (any 127.0.0.0/8 address is this host's), so
// that a test can be a trusted proxy (127.0.0.2) or a client nobody trusts (127.0.0.1).
func (g gateway) from(t *testing.T, ip, path, token string, headers ...string) reply {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}}}
	t.Cleanup(client.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readReply(t, resp)
}

const proxyIP, clientIP = "127.0.0.2", "127.0.0.1"

func TestForwarded_UntrustedClientsHeadersAreReplacedByItsAddress(t *testing.T) {
	up := echo(t)
	bases := map[domain.Upstream]string{domain.UpstreamVM: up.URL}
	nobody := startGatewayTrusting(t, bases, 1<<10, nil, nil)
	other := startGatewayTrusting(t, bases, 1<<10, []string{proxyIP, "10.0.0.0/8"}, nil)
	for name, g := range map[string]gateway{"no proxy trusted": nobody, "peer not among the trusted": other} {
		t.Run(name, func(t *testing.T) {
			r := g.from(t, clientIP, "/api/vms", g.issuer.Token(t, 7, authn.RoleUser),
				"X-Forwarded-For", "1.2.3.4", "X-Forwarded-For", "10.0.0.2", "X-Forwarded-Proto", "https",
				"X-Forwarded-Host", "evil.example", "Host", "limen.example")
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if got := r.forwarded("X-Forwarded-For"); got != clientIP {
				t.Errorf("X-Forwarded-For %q, want the peer %s", got, clientIP)
			}
			if r.forwarded("X-Forwarded-Proto") != "http" || r.forwarded("X-Forwarded-Host") != "limen.example" {
				t.Errorf("proto %q host %q", r.forwarded("X-Forwarded-Proto"), r.forwarded("X-Forwarded-Host"))
			}
		})
	}
}

func TestForwarded_TrustedProxyNamesTheClient(t *testing.T) {
	up := echo(t)
	g := startGatewayTrusting(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL}, 1<<10, []string{proxyIP}, nil)
	r := g.from(t, proxyIP, "/api/vms", g.issuer.Token(t, 7, authn.RoleUser),
		"X-Forwarded-For", "1.2.3.4", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "limen.example", "Host", "gateway.internal:18443")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if r.forwarded("X-Forwarded-For") != "1.2.3.4" || r.forwarded("X-Forwarded-Proto") != "https" || r.forwarded("X-Forwarded-Host") != "limen.example" {
		t.Errorf("forwarded %q %q %q", r.forwarded("X-Forwarded-For"), r.forwarded("X-Forwarded-Proto"), r.forwarded("X-Forwarded-Host"))
	}
	// Without the header the proxy itself is the client.
	if r := g.from(t, proxyIP, "/api/vms", g.issuer.Token(t, 7, authn.RoleUser)); r.forwarded("X-Forwarded-For") != proxyIP {
		t.Errorf("no header: %q", r.forwarded("X-Forwarded-For"))
	}
}

func TestForwarded_SpoofedChainEntriesAreNotBelieved(t *testing.T) {
	up := echo(t)
	g := startGatewayTrusting(t, map[domain.Upstream]string{domain.UpstreamVM: up.URL}, 1<<10, []string{proxyIP, "10.0.0.0/8"}, nil)
	token := g.issuer.Token(t, 7, authn.RoleUser)
	cases := []struct {
		name    string
		headers []string
		want    string
	}{
		// The client wrote "6.6.6.6"; the trusted proxy appended the address it saw.
		{"one appending proxy", []string{"X-Forwarded-For", "6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"one proxy adding its own line", []string{"X-Forwarded-For", "6.6.6.6", "X-Forwarded-For", "1.2.3.4"}, "1.2.3.4"},
		// Two trusted hops (an edge proxy at 10.0.0.2 and the one in front of the gateway).
		{"two trusted proxies", []string{"X-Forwarded-For", "6.6.6.6, 10.9.9.9, 1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		// The client posing as a trusted proxy: its own entry is left of its address and never read.
		{"client posing as a proxy", []string{"X-Forwarded-For", "10.0.0.7, 1.2.3.4"}, "1.2.3.4"},
		{"garbage from the client", []string{"X-Forwarded-For", "<script>, 1.2.3.4"}, "1.2.3.4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := g.from(t, proxyIP, "/api/vms", token, tc.headers...)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			if got := r.forwarded("X-Forwarded-For"); got != tc.want {
				t.Fatalf("X-Forwarded-For %q, want %q", got, tc.want)
			}
		})
	}
	// Proto and host: the appending proxy's value, not the one the client put before it.
	r := g.from(t, proxyIP, "/api/vms", token, "X-Forwarded-For", "1.2.3.4",
		"X-Forwarded-Proto", "https, http", "X-Forwarded-Host", "evil.example, limen.example")
	if r.forwarded("X-Forwarded-Proto") != "http" || r.forwarded("X-Forwarded-Host") != "limen.example" {
		t.Errorf("proto %q host %q", r.forwarded("X-Forwarded-Proto"), r.forwarded("X-Forwarded-Host"))
	}
	if strings.Contains(r.forwarded("X-Forwarded-For"), ",") {
		t.Errorf("the chain was passed on: %q", r.forwarded("X-Forwarded-For"))
	}
}

func readReply(t *testing.T, resp *http.Response) reply {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), header: resp.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}
