package libvirttest

import (
	"context"
	"testing"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

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

// Connect opens a connection to the package's daemon for the test; it is closed when the test ends.
func Connect(t testing.TB) *libvirt.Libvirt {
	t.Helper()
	d := Shared(t)
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(d.SocketPath())))
	if err := l.ConnectToURI(libvirt.ConnectURI(d.URI())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Disconnect() })
	return l
}
