package libvirttest

import (
	"context"
	"testing"

	"limen/libs/testkit"
)

var shared *Daemon

// Main starts this test package's daemon, runs the tests and stops it with everything it started:
//
//	func TestMain(m *testing.M) { libvirttest.Main(m) }
func Main(m *testing.M) { testkit.Main(m, StartShared) }

// StartShared starts the package's daemon for a TestMain that needs other kits too; call the
// returned stop after m.Run.
func StartShared(ctx context.Context) (stop func() error, err error) {
	d, err := Start(ctx)
	if err != nil {
		return nil, err
	}
	shared = d
	return d.Stop, nil
}

// Shared is the package's daemon started by Main.
func Shared(t testing.TB) *Daemon {
	t.Helper()
	if shared == nil {
		t.Fatal("libvirttest: no daemon; call libvirttest.Main(m) from TestMain")
	}
	return shared
}
