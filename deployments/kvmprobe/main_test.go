package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"limen/libs/testkit/libvirttest"
)

func TestMain(m *testing.M) { libvirttest.Main(m) }

// The private daemon runs as a user without /dev/kvm: software emulation, and the verdict is kept
// for that libvirt so the next run does not probe again.
func TestVerdict_SoftwareEmulationWithoutKVMAndCached(t *testing.T) {
	d := libvirttest.Shared(t)
	cache := filepath.Join(t.TempDir(), "kvm-verdict")
	domainType, _, err := verdict(context.Background(), d.SocketPath(), d.URI(), cache)
	if err != nil || domainType != "qemu" {
		t.Fatalf("verdict = %q, %v; want qemu", domainType, err)
	}
	kept, err := os.ReadFile(cache)
	if err != nil || !strings.Contains(string(kept), "socket="+d.SocketPath()) {
		t.Fatalf("cache %q, %v", kept, err)
	}
	// A cached verdict is what the next run answers, without probing.
	key, _, _ := strings.Cut(string(kept), "\n")
	if err := os.WriteFile(cache, []byte(key+"\nkvm\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if domainType, _, err := verdict(context.Background(), d.SocketPath(), d.URI(), cache); err != nil || domainType != "kvm" {
		t.Fatalf("second verdict = %q, %v; want the cached kvm", domainType, err)
	}
}
