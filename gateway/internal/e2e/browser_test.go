package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	devtools string // host:port
}

// startBrowser starts Debian's Chromium (make test installs it under CI=true); without one the test
// is skipped, except under CI, where it fails.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			bin = path
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium (CI=true make test installs Debian's chromium)")
		}
		t.Skip("no Chromium here: apt-get install chromium, or run CI=true make test")
	}
	cmd := exec.Command(bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--remote-debugging-port=0", "--window-size=1024,800", "--user-data-dir="+t.TempDir(), "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // Chromium and its helpers, its own group
		_ = cmd.Wait()
	})
	listening := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
	found := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			if m := listening.FindStringSubmatch(lines.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case addr := <-found:
		return &browser{devtools: addr}
	case <-time.After(60 * time.Second):
		t.Fatal("Chromium did not open its DevTools port within 60 s")
		return nil
	}
}

// page is one tab.
type page struct {
	conn *websocket.Conn
	seq  int
}

func (b *browser) page(t *testing.T) *page {
	t.Helper()
	resp, err := http.Get("http://" + b.devtools + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var targets []struct {
		Type string `json:"type"`
		URL  string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		if target.Type == "page" {
			conn, _, err := websocket.DefaultDialer.Dial(target.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return &page{conn: conn}
		}
	}
	t.Fatal("Chromium has no page")
	return nil
}

// call runs a DevTools method and decodes its result into result (when not nil).
func (p *page) call(method string, params, result any) error {
	p.seq++
	if err := p.conn.WriteJSON(map[string]any{"id": p.seq, "method": method, "params": params}); err != nil {
		return err
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := p.conn.ReadJSON(&msg); err != nil {
			return err
		}
		if msg.ID != p.seq {
			continue // an event
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		if result == nil {
			return nil
		}
		return json.Unmarshal(msg.Result, result)
	}
}

// evaluate answers a JavaScript expression's value.
func (p *page) evaluate(expression string, value any) error {
	var out struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := p.call("Runtime.evaluate", map[string]any{"expression": expression, "returnByValue": true}, &out); err != nil {
		return err
	}
	if out.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s", expression, out.ExceptionDetails.Text)
	}
	return json.Unmarshal(out.Result.Value, value)
}

// canvasState is the page's state and how many colours its canvas shows (up to 16).
const canvasState = `(() => {
  const canvas = document.querySelector('#screen canvas');
  const state = (document.body && document.body.dataset.state) || '';
  const status = (document.getElementById('status') || {}).textContent || '';
  if (!canvas || canvas.width === 0) return {state, colours: 0, status};
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length && seen.size < 16; i += 4) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return {state, colours: seen.size, status};
})()`

// showPage opens the console page of vm with a fresh ticket in headless Chromium, waits until its
// canvas shows the screen (more than one colour), and keeps a screenshot in the test's artifacts
// (go test -artifacts keeps them under -outputdir).
func showPage(t *testing.T, s *stack, token, vm string) {
	t.Helper()
	b := startBrowser(t)
	p := b.page(t)
	ticket := s.ticket(token, vm, "vnc")
	secret := ticket.WSURL[strings.Index(ticket.WSURL, "?token=")+len("?token="):]
	url := "http://" + s.gateway + "/console/" + vm + "#token=" + secret
	if err := p.call("Page.navigate", map[string]any{"url": url}, nil); err != nil {
		t.Fatal(err)
	}
	var state struct {
		State   string `json:"state"`
		Colours int    `json:"colours"`
		Status  string `json:"status"`
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if err := p.evaluate(canvasState, &state); err != nil {
			t.Fatal(err)
		}
		if state.State == "connected" && state.Colours > 1 {
			break
		}
		if state.State == "failed" || state.State == "disconnected" || time.Now().After(deadline) {
			t.Fatalf("the console page: %+v", state)
		}
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := p.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.ArtifactDir(), "console-page.png")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("console page: %q, canvas of %d+ colours; screenshot %dx%d at %s", state.Status, state.Colours,
		img.Bounds().Dx(), img.Bounds().Dy(), path)
}
