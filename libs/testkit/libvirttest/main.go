package libvirttest

import (
	"context"
	"fmt"
	"os"
	"testing"
)

var shared *Daemon

// Main starts this test package's daemon, runs the tests and stops it with everything it started:
//
//	func TestMain(m *testing.M) { libvirttest.Main(m) }
func Main(m *testing.M) {
	d, err := Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "libvirttest:", err)
		os.Exit(1)
	}
	shared = d
	code := m.Run()
	if err := d.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "libvirttest: stop:", err)
		code = 1
	}
	os.Exit(code)
}

// Shared is the package's daemon started by Main.
func Shared(t testing.TB) *Daemon {
	t.Helper()
	if shared == nil {
		t.Fatal("libvirttest: no daemon; call libvirttest.Main(m) from TestMain")
	}
	return shared
}
