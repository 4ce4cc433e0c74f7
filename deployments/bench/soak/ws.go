package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// wsClient is one user's live status socket (/ws/vm-status), kept open and reopened when it closes.
// It applies vm_list, vm_update and vm_delete in order to its view of the user's VMs, and media_update
// to its view of their drives; each connection starts from its first vm_list.
type wsClient struct {
	u   *user
	url string

	mu          sync.Mutex
	conn        int // connections opened
	connected   bool
	connectedAt time.Time
	view        map[string]map[string]any // by uuid, the current connection's
	listed      bool                      // the current connection got its first vm_list
	media       map[string]mediaView      // by uuid, from the current connection's media_updates
	last        map[stream]int64          // the current connection's newest seq per stream
	closes      map[string]int            // why connections ended
	messages    map[string]int
	gaps        []seqProblem // vm seqs skipped: events that never arrived
	disorder    []seqProblem // a seq not above the one before: applied out of order
}

type mediaView struct {
	path     string
	attached bool
}

// stream is one independently numbered sequence: a VM's own events, or its drive's (media-service).
type stream struct {
	uuid  string
	media bool
}

type seqProblem struct {
	uuid       string
	media      bool
	prev, seq  int64
	at         time.Time
	connection int
}

func newWSClient(u *user, gateway string) *wsClient {
	return &wsClient{u: u, url: "ws://" + gateway + "/ws/vm-status", closes: map[string]int{}, messages: map[string]int{}}
}

// run keeps a socket open until ctx ends.
func (w *wsClient) run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		opened := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.connected = false
		w.closes[closeClass(err)]++
		w.mu.Unlock()
		if time.Since(opened) > 10*time.Second {
			backoff = 250 * time.Millisecond
		}
		sleepCtx(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// session is one connection, from the dial until it ends.
func (w *wsClient) session(ctx context.Context) error {
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := dialer.Dial(w.url+"?token="+w.u.tok(), nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			w.u.login(ctx)
		}
		if resp != nil {
			return fmt.Errorf("dial: %d", resp.StatusCode)
		}
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	w.mu.Lock()
	w.conn++
	w.connected, w.connectedAt, w.listed = true, time.Now(), false
	w.view, w.media, w.last = map[string]map[string]any{}, map[string]mediaView{}, map[stream]int64{}
	w.mu.Unlock()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == 4401 || errors.As(err, &ce) && ce.Code == 4403 {
				w.u.login(ctx)
			}
			return err
		}
		w.apply(data)
	}
}

type wsMessage struct {
	Type      string           `json:"type"`
	VMs       []map[string]any `json:"vms"`
	VM        map[string]any   `json:"vm"`
	Seq       int64            `json:"seq"`
	VMUUID    string           `json:"vm_uuid"`
	MediaPath string           `json:"media_path"`
	Attached  bool             `json:"attached"`
}

func (w *wsClient) apply(data []byte) {
	var m wsMessage
	if err := json.Unmarshal(data, &m); err != nil {
		w.mu.Lock()
		w.messages["undecodable"]++
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages[m.Type]++
	switch m.Type {
	case "vm_list":
		w.view = map[string]map[string]any{}
		for _, vm := range m.VMs {
			w.view[fmt.Sprint(vm["uuid"])] = vm
		}
		w.listed = true
	case "vm_update":
		uuid := fmt.Sprint(m.VM["uuid"])
		w.checkSeq(stream{uuid: uuid}, m.Seq)
		w.view[uuid] = m.VM
	case "vm_delete":
		uuid := fmt.Sprint(m.VM["uuid"])
		w.checkSeq(stream{uuid: uuid}, m.Seq)
		delete(w.view, uuid)
		delete(w.media, uuid)
	case "media_update":
		w.checkSeq(stream{uuid: m.VMUUID, media: true}, m.Seq)
		w.media[m.VMUUID] = mediaView{path: m.MediaPath, attached: m.Attached}
	}
}

// checkSeq: within a connection a stream's seqs must grow; a VM's own seqs grow by one per change
// (vm-service numbers them by the VM's version), so a jump means events that never arrived. The
// drive's seqs (media-service's history ids) only grow.
func (w *wsClient) checkSeq(s stream, seq int64) {
	last, seen := w.last[s]
	p := seqProblem{uuid: s.uuid, media: s.media, prev: last, seq: seq, at: time.Now(), connection: w.conn}
	switch {
	case !seen:
	case seq <= last:
		w.disorder = append(w.disorder, p)
	case !s.media && seq != last+1:
		w.gaps = append(w.gaps, p)
	}
	w.last[s] = max(last, seq)
}

// snapshot is the current connection's view (nil while not connected or before its first list).
func (w *wsClient) snapshot() (view map[string]map[string]any, media map[string]mediaView, since time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.connected || !w.listed {
		return nil, nil, time.Time{}
	}
	view = make(map[string]map[string]any, len(w.view))
	for k, v := range w.view {
		view[k] = v
	}
	media = make(map[string]mediaView, len(w.media))
	for k, v := range w.media {
		media[k] = v
	}
	return view, media, w.connectedAt
}

func closeClass(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return "connection dropped without a close frame (1006)"
	case errors.As(err, &ce):
		return fmt.Sprintf("closed by the server: %d %s", ce.Code, ce.Text)
	case err == nil:
		return "ended"
	case strings.HasPrefix(err.Error(), "dial"):
		return "could not connect (" + shortErr(err) + ")"
	default:
		return "connection lost (" + shortErr(err) + ")"
	}
}

func shortErr(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "unexpected EOF"), strings.HasSuffix(s, "EOF"):
		return "EOF"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	}
	return s
}
