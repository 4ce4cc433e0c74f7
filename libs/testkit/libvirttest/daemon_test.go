package libvirttest_test

import (
	"context"
	"net"
	"os"
	"testing"

	"limen/libs/testkit/libvirttest"
)

func TestDaemon_KillRestartStop_LeavesNothing(t *testing.T) {
	ctx := context.Background()
	d, err := libvirttest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() error {
		conn, err := net.Dial("unix", d.SocketPath())
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if dial() == nil {
		t.Fatal("socket still answers after Kill")
	}
	if err := d.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err != nil {
		t.Fatalf("socket after restart: %v", err)
	}
	dir := d.ImageDir()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("state directory left behind: %v", err)
	}
}
