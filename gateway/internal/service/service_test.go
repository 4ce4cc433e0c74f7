package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"limen/libs/config"
	"limen/libs/process"
	"limen/libs/telemetry"
	"limen/libs/testkit/jwttest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRun runs the gateway as main does, with env on top of the defaults; stop ends it and returns
// what Run returned.
func startRun(t *testing.T, env map[string]string) (stop func() error) {
	t.Helper()
	env["LIMEN_JWKS_URL"] = jwttest.New(t).JWKSURL
	env["KAFKA_BROKERS"], env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "", ""
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Load[Config]()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tel, err := telemetry.Setup(ctx, Name)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, process.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Telemetry: tel})
	}()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
			return nil
		}
	})
	t.Cleanup(func() { _ = stop(); _ = tel.Shutdown(context.Background()) })
	return stop
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = http.Get(url); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRun_MetricsAndReadyzOnlyOnTheInternalListener(t *testing.T) {
	public, internal := freeAddr(t), freeAddr(t)
	stop := startRun(t, map[string]string{"LISTEN_ADDR": public, "LIMEN_METRICS_ADDR": internal})

	for _, path := range []string{"/metrics", "/readyz"} {
		if status, body := get(t, "http://"+public+path); status != 404 || body != `{"code":404,"message":"Not found"}` {
			t.Errorf("public %s: %d %s", path, status, body)
		}
	}
	if status, _ := get(t, "http://"+public+"/healthz"); status != 200 {
		t.Errorf("public /healthz: %d", status)
	}
	// GET /api/health: auth-service is not running here, so degraded, but answered.
	if status, body := get(t, "http://"+public+"/api/health"); (status != 200 && status != 503) || !strings.Contains(body, `"services"`) {
		t.Errorf("public /api/health: %d %s", status, body)
	}
	if status, body := get(t, "http://"+internal+"/metrics"); status != 200 || !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "/api/health") {
		t.Errorf("internal /metrics: %d %.300s", status, body)
	}
	if status, body := get(t, "http://"+internal+"/readyz"); status != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("internal /readyz: %d %s", status, body)
	}
	if status, _ := get(t, "http://"+internal+"/api/health"); status != 404 {
		t.Errorf("internal listener serves the API: %d", status)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{public, internal} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts after shutdown", addr)
		}
	}
}

func TestRun_MetricsAddrOffServesNoInternalListener(t *testing.T) {
	public := freeAddr(t)
	startRun(t, map[string]string{"LISTEN_ADDR": public, "LIMEN_METRICS_ADDR": "off"})
	if status, _ := get(t, "http://"+public+"/healthz"); status != 200 {
		t.Fatalf("public /healthz: %d", status)
	}
	if status, _ := get(t, "http://"+public+"/metrics"); status != 404 {
		t.Errorf("public /metrics: %d", status)
	}
}

func TestRun_BadTrustedProxyStopsStartUp(t *testing.T) {
	stop := startRun(t, map[string]string{"LISTEN_ADDR": freeAddr(t), "LIMEN_METRICS_ADDR": "off", "LIMEN_TRUSTED_PROXIES": "10.0.0.0/8,gateway"})
	if err := stop(); err == nil || !strings.Contains(err.Error(), "LIMEN_TRUSTED_PROXIES") || !strings.Contains(err.Error(), `"gateway"`) {
		t.Fatalf("run: %v", err)
	}
}

func TestRun_OriginThatNoBrowserSendsStopsStartUp(t *testing.T) {
	stop := startRun(t, map[string]string{"LISTEN_ADDR": freeAddr(t), "LIMEN_METRICS_ADDR": "off",
		"LIMEN_CORS_ORIGINS": "http://localhost:3000,localhost:3001"})
	if err := stop(); err == nil || !strings.Contains(err.Error(), "LIMEN_CORS_ORIGINS") || !strings.Contains(err.Error(), `"localhost:3001"`) {
		t.Fatalf("run: %v", err)
	}
}

func TestConfig_Defaults(t *testing.T) {
	for _, k := range []string{"LISTEN_ADDR", "LIMEN_METRICS_ADDR", "LIMEN_TRUSTED_PROXIES", "LIMEN_WS_MAX_PER_USER"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	cfg, err := config.Load[Config]()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsAddr != "127.0.0.1:18444" || cfg.ListenAddr == cfg.MetricsAddr || len(cfg.TrustedProxies) != 0 || cfg.WSMaxPerUser != 20 {
		t.Fatalf("%+v", cfg)
	}
}

func TestConfig_MetricsAddr(t *testing.T) {
	for value, ok := range map[string]bool{"off": true, "0.0.0.0:18444": true, "127.0.0.1:9464": true, "18444": false, "none": false} {
		t.Setenv("LIMEN_METRICS_ADDR", value)
		if _, err := config.Load[Config](); (err == nil) != ok {
			t.Errorf("LIMEN_METRICS_ADDR=%s: %v", value, err)
		}
	}
}

func TestRun_TheAPIDocumentIsPublicOnly(t *testing.T) {
	public, internal := freeAddr(t), freeAddr(t)
	startRun(t, map[string]string{"LISTEN_ADDR": public, "LIMEN_METRICS_ADDR": internal})
	if status, body := get(t, "http://"+public+"/api/openapi.json"); status != 200 || !strings.Contains(body, `"openapi"`) {
		t.Errorf("public /api/openapi.json: %d %.100s", status, body)
	}
	if status, body := get(t, "http://"+public+"/api/docs"); status != 200 || !strings.Contains(body, "swagger-ui") {
		t.Errorf("public /api/docs: %d %.100s", status, body)
	}
	if status, _ := get(t, "http://"+internal+"/api/openapi.json"); status != 404 {
		t.Errorf("internal /api/openapi.json: %d", status)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key; it returns their files.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestRun_TLSOnThePublicListenerOnly(t *testing.T) {
	public, internal := freeAddr(t), freeAddr(t)
	certFile, keyFile := selfSigned(t)
	startRun(t, map[string]string{"LISTEN_ADDR": public, "LIMEN_METRICS_ADDR": internal,
		"LIMEN_TLS_CERT_FILE": certFile, "LIMEN_TLS_KEY_FILE": keyFile})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err = client.Get("https://" + public + "/healthz"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("public /healthz over TLS: %d", resp.StatusCode)
	}
	if status, _ := get(t, "http://"+internal+"/readyz"); status != 200 {
		t.Errorf("internal /readyz over plain HTTP: %d", status)
	}
}

func TestRun_UnreadableCertificateStopsStartUp(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.pem")
	stop := startRun(t, map[string]string{"LISTEN_ADDR": freeAddr(t), "LIMEN_METRICS_ADDR": "off",
		"LIMEN_TLS_CERT_FILE": missing, "LIMEN_TLS_KEY_FILE": missing})
	if err := stop(); err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("Run: %v", err)
	}
}
