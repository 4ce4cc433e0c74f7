package authclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"limen/libs/failure"
)

// A client of a stand-in for auth-service's internal user route, answering per user id.
func standIn(t *testing.T, answers map[string]func(w http.ResponseWriter)) *Client {
	t.Helper()
	return New(standInURL(t, answers), "peer-secret")
}

// standInURL is where the stand-in listens.
func standInURL(t *testing.T, answers map[string]func(w http.ResponseWriter)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer peer-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		answer, ok := answers[r.URL.Path]
		if !ok {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
			return
		}
		answer(w)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func write(status int, body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func TestExists(t *testing.T) {
	c := standIn(t, map[string]func(w http.ResponseWriter){
		"/internal/users/5": write(http.StatusOK, `{"id":5,"username":"ann","role":"user","approved":true}`),
		"/internal/users/6": write(http.StatusNotFound, `{"code":404,"message":"User not found"}`),
		"/internal/users/7": write(http.StatusServiceUnavailable, `{"code":503,"message":"Service temporarily unavailable, try again shortly"}`),
		"/internal/users/8": write(http.StatusInternalServerError, `{"code":500,"message":"Internal server error"}`),
		"/internal/users/9": write(http.StatusOK, `{"id":10,"username":"someone else"}`),
	})
	ctx := context.Background()
	if ok, err := c.Exists(ctx, 5); !ok || err != nil {
		t.Errorf("a user: %v %v", ok, err)
	}
	if ok, err := c.Exists(ctx, 6); ok || err != nil {
		t.Errorf("no user: %v %v", ok, err)
	}
	if _, err := c.Exists(ctx, 7); failure.KindOf(err) != failure.Unavailable {
		t.Errorf("auth-service unavailable: %v, want an Unavailable failure", err)
	}
	for _, id := range []int64{8, 9} {
		if ok, err := c.Exists(ctx, id); ok || err == nil || failure.KindOf(err) != failure.Unknown {
			t.Errorf("user %d: %v %v, want an internal error", id, ok, err)
		}
	}
}

func TestExists_Unreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	if _, err := New(srv.URL, "peer-secret").Exists(context.Background(), 5); failure.KindOf(err) != failure.Unavailable {
		t.Errorf("auth-service down: %v, want an Unavailable failure", err)
	}
}

func TestExists_WrongToken(t *testing.T) {
	c := New(standInURL(t, nil), "wrong")
	if ok, err := c.Exists(context.Background(), 5); ok || err == nil || failure.KindOf(err) != failure.Unknown {
		t.Errorf("refused token: %v %v, want an internal error", ok, err)
	}
}
