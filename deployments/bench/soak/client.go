package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// api talks to the gateway as the frontend does.
type api struct {
	base string
	http *http.Client
}

// reply is one answer (status 0: none, err says why).
type reply struct {
	status int
	obj    map[string]any
	list   []any
	raw    string
	err    error
}

func (r reply) message() string { m, _ := r.obj["message"].(string); return m }

func (r reply) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(tailString(r.raw, 300)))
}

func (a *api) do(method, path, token string, body any) reply {
	var reader io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, reader)
	if err != nil {
		return reply{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw), err: err}
	var decoded any
	if json.Unmarshal(raw, &decoded) == nil {
		r.obj, _ = decoded.(map[string]any)
		r.list, _ = decoded.([]any)
	}
	return r
}

// Classes of answers the clients see. The "expected" ones are what a correct service answers a client
// whose picture is a moment old, or that retries a request whose first answer was lost.
const (
	classBusy      = "409 busy (expected: another action holds the VM)"
	classState     = "409 state (expected: the VM's state changed meanwhile)"
	classRetryDone = "already done (expected: a retry found its first try had worked)"
)

// classify names what a client saw. Client-visible errors: no answer, 5xx, and 4xx a correct service
// would not have answered.
func classify(r reply) (class string, expected bool) {
	var netErr net.Error
	switch {
	case r.err != nil && errors.As(r.err, &netErr) && netErr.Timeout():
		return "timeout (no answer within the client's limit)", false
	case r.err != nil:
		return "no answer (connection refused or reset)", false
	case r.status == http.StatusConflict && strings.HasPrefix(r.message(), "VM is busy"):
		return classBusy, true
	case r.status == http.StatusConflict && strings.HasPrefix(r.message(), "Cannot "):
		return classState, true
	case r.status >= 500:
		return fmt.Sprintf("%d %s", r.status, r.message()), false
	default:
		return fmt.Sprintf("%d %s (unexpected)", r.status, r.message()), false
	}
}

// ambiguous answers leave open whether the request took effect; the client tries again.
func ambiguous(r reply) bool { return r.err != nil || r.status >= 500 }

// stats counts operations and what clients saw, each error on whether a fault was under way.
type stats struct {
	mu       sync.Mutex
	ops      map[string]*opCount
	errors   map[string]*errCount
	expected map[string]int
	examples map[string][]string // a few examples of errors outside faults
	byFault  map[string]int      // client-visible errors by the kind of fault under way
	faults   *faultLog
}

type opCount struct{ ok, failed int }

type errCount struct{ inFault, outside int }

func newStats(f *faultLog) *stats {
	return &stats{ops: map[string]*opCount{}, errors: map[string]*errCount{}, expected: map[string]int{},
		examples: map[string][]string{}, byFault: map[string]int{}, faults: f}
}

func (s *stats) op(name string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ops[name]
	if c == nil {
		c = &opCount{}
		s.ops[name] = c
	}
	if ok {
		c.ok++
	} else {
		c.failed++
	}
}

// saw records one non-2xx answer (or none) to a request sent at start; it counts as during a fault
// when it was sent or answered while one was under way.
func (s *stats) saw(r reply, what string, start time.Time) {
	class, expected := classify(r)
	s.seen(class, expected, what+": "+r.String(), start)
}

func (s *stats) seen(class string, expected bool, example string, start time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if expected {
		s.expected[class]++
		return
	}
	c := s.errors[class]
	if c == nil {
		c = &errCount{}
		s.errors[class] = c
	}
	kind := s.faults.during(start)
	if kind == "" {
		kind = s.faults.during(time.Now())
	}
	if kind != "" {
		c.inFault++
		s.byFault[kind]++
		return
	}
	c.outside++
	if len(s.examples[class]) < 5 {
		s.examples[class] = append(s.examples[class], time.Now().Format("15:04:05.000")+" "+example)
	}
}

func (s *stats) totals() (ops, failedOps, inFault, outside, expected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.ops {
		ops += c.ok + c.failed
		failedOps += c.failed
	}
	for _, c := range s.errors {
		inFault += c.inFault
		outside += c.outside
	}
	for _, n := range s.expected {
		expected += n
	}
	return
}

func (s *stats) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(w, "operations (done / given up):")
	for _, name := range sortedKeys(s.ops) {
		fmt.Fprintf(w, "  %-22s %6d / %d\n", name, s.ops[name].ok, s.ops[name].failed)
	}
	fmt.Fprintln(w, "client-visible errors (during a fault / outside faults):")
	if len(s.errors) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, class := range sortedKeys(s.errors) {
		fmt.Fprintf(w, "  %-60s %6d / %d\n", class, s.errors[class].inFault, s.errors[class].outside)
		for _, ex := range s.examples[class] {
			fmt.Fprintf(w, "      outside a fault: %s\n", ex)
		}
	}
	fmt.Fprintln(w, "client-visible errors by the fault under way:")
	for _, kind := range sortedKeys(s.byFault) {
		fmt.Fprintf(w, "  %-22s %6d\n", kind, s.byFault[kind])
	}
	fmt.Fprintln(w, "expected answers (not errors):")
	for _, class := range sortedKeys(s.expected) {
		fmt.Fprintf(w, "  %-60s %6d\n", class, s.expected[class])
	}
}

// faultLog keeps the faults and when each was under way: from its start until every process was
// ready again, plus a grace for clients to notice.
type faultLog struct {
	mu     sync.Mutex
	faults []fault
	open   *fault // being injected
}

const faultGrace = 5 * time.Second

func (l *faultLog) begin(kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open = &fault{kind: kind, start: time.Now()}
}

func (l *faultLog) end(f fault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open = nil
	l.faults = append(l.faults, f)
}

// during names the fault under way at t ("" if none).
func (l *faultLog) during(t time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open != nil && !t.Before(l.open.start) {
		return l.open.kind
	}
	for _, f := range l.faults {
		end := f.ready
		if end.IsZero() {
			end = f.restored.Add(time.Hour) // never recovered: everything after it is its doing
		}
		if !t.Before(f.start) && t.Before(end.Add(faultGrace)) {
			return f.kind
		}
	}
	return ""
}

func (l *faultLog) list() []fault {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]fault(nil), l.faults...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
