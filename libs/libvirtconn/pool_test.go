package libvirtconn_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/digitalocean/go-libvirt"

	"limen/libs/libvirtconn"
	"limen/libs/testkit/libvirttest"
)

// removePool runs at cleanup even when EnsureDirPool failed half way.
func removePool(t *testing.T, l *libvirt.Libvirt, name string) {
	t.Cleanup(func() {
		if pool, err := l.StoragePoolLookupByName(name); err == nil {
			_ = l.StoragePoolDestroy(pool)
			_ = l.StoragePoolUndefine(pool)
		}
	})
}

func TestEnsureDirPool_CreatesStartsAndAutostarts(t *testing.T) {
	l := libvirttest.Connect(t)
	dir := filepath.Join(libvirttest.Shared(t).ImageDir(), "fresh")
	removePool(t, l, "limen-fresh")
	if err := libvirtconn.EnsureDirPool(l, "limen-fresh", dir); err != nil {
		t.Fatal(err)
	}
	pool, err := l.StoragePoolLookupByName("limen-fresh")
	if err != nil {
		t.Fatal(err)
	}
	state, _, _, _, err := l.StoragePoolGetInfo(pool)
	if err != nil || libvirt.StoragePoolState(state) != libvirt.StoragePoolRunning {
		t.Fatalf("pool state %d (%v), want running", state, err)
	}
	if autostart, err := l.StoragePoolGetAutostart(pool); err != nil || autostart != 1 {
		t.Fatalf("autostart %d (%v)", autostart, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("directory not built: %v", err)
	}
	if err := libvirtconn.EnsureDirPool(l, "limen-fresh", dir+"/"); err != nil {
		t.Fatalf("second call on a running pool: %v", err)
	}
}

func TestEnsureDirPool_RestartsAPoolWhoseDirectoryVanished(t *testing.T) {
	l := libvirttest.Connect(t)
	dir := filepath.Join(libvirttest.Shared(t).ImageDir(), "vanishing")
	removePool(t, l, "limen-vanishing")
	if err := libvirtconn.EnsureDirPool(l, "limen-vanishing", dir); err != nil {
		t.Fatal(err)
	}
	pool, err := l.StoragePoolLookupByName("limen-vanishing")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StoragePoolDestroy(pool); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := libvirtconn.EnsureDirPool(l, "limen-vanishing", dir); err != nil {
		t.Fatalf("second start over a removed directory: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("directory not rebuilt: %v", err)
	}
}

func TestEnsureDirPool_RefusesAPoolOfItsNameElsewhere(t *testing.T) {
	l := libvirttest.Connect(t)
	dir := libvirttest.Shared(t).ImageDir()
	removePool(t, l, "limen-elsewhere")
	if err := libvirtconn.EnsureDirPool(l, "limen-elsewhere", filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	err := libvirtconn.EnsureDirPool(l, "limen-elsewhere", filepath.Join(dir, "b"))
	if !errors.Is(err, libvirtconn.ErrPoolElsewhere) {
		t.Fatalf("got %v, want ErrPoolElsewhere", err)
	}
}
