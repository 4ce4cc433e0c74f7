package vmclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"limen/libs/failure"
	"limen/media-service/internal/adapters/vmclient"
	"limen/media-service/internal/domain"
)

func TestLookup_AnswersOfVMService(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer peer-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/internal/vms/7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10":
			_, _ = w.Write([]byte(`{"id":7,"uuid":"7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10","owner_id":3,"status":"Running"}`))
		case "/internal/vms/bad":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":400,"message":"Invalid VM reference: bad"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":404,"message":"VM not found"}`))
		}
	}))
	defer srv.Close()
	c := vmclient.New(srv.URL, "peer-secret")
	ctx := context.Background()

	vm, err := c.Lookup(ctx, "7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10")
	if err != nil || vm.OwnerID != 3 || vm.UUID.String() != "7c4e0f4e-58a4-4c4c-9a3f-1f0b3b6c2d10" || vm.Status != "Running" {
		t.Fatalf("%+v %v", vm, err)
	}
	if _, err := c.Lookup(ctx, "42"); !errors.Is(err, domain.ErrVMNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := c.Lookup(ctx, "bad"); failure.KindOf(err) != failure.Invalid || err.Error() != "Invalid VM reference: bad" {
		t.Fatalf("malformed: %v", err)
	}
	if _, err := vmclient.New(srv.URL, "wrong").Lookup(ctx, "42"); err == nil || failure.KindOf(err) != failure.Unknown {
		t.Fatalf("a misconfigured token must be a server error, got %v", err)
	}
	srv.Close()
	if _, err := c.Lookup(ctx, "42"); !errors.Is(err, domain.ErrVMServiceDown) {
		t.Fatalf("vm-service down: %v", err)
	}
}
