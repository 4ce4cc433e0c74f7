package web_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"limen/libs/web"
)

// A request id the app makes is a random (version 4) UUID, a new one each time.
func TestRequestID_MadeIsARandomUUID(t *testing.T) {
	app := newApp(nil)
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		_, _, h := do(t, app, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		id := h.Get(web.HeaderRequestID)
		if !v4.MatchString(id) || seen[id] {
			t.Fatalf("request id %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}
