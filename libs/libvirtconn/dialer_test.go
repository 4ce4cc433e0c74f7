package libvirtconn

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
)

func TestDialerFor_LocalSockets(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if err := os.Mkdir(filepath.Join(dir, "libvirt"), 0o755); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan string, 1)
	for _, path := range []string{"libvirt/libvirt-sock", "param", "override"} {
		ln, err := net.Listen("unix", filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
				accepted <- path
			}
		}()
	}
	for _, tc := range []struct {
		cfg    Config
		socket string
		name   libvirt.ConnectURI
	}{
		{Config{URI: "qemu:///session"}, "libvirt/libvirt-sock", "qemu:///session"},
		{Config{URI: "qemu+unix:///system?socket=" + filepath.Join(dir, "param")}, "param", "qemu:///system"},
		{Config{URI: "qemu:///system?socket=/nowhere", Socket: filepath.Join(dir, "override")}, "override", "qemu:///system"},
	} {
		d, name, err := dialerFor(tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.cfg.URI, err)
		}
		if name != tc.name {
			t.Errorf("%s: opens %s, want %s", tc.cfg.URI, name, tc.name)
		}
		c, err := d.Dial()
		if err != nil {
			t.Fatalf("%s: %v", tc.cfg.URI, err)
		}
		c.Close()
		select {
		case got := <-accepted:
			if got != tc.socket {
				t.Errorf("%s: dialled %s, want %s", tc.cfg.URI, got, tc.socket)
			}
		case <-time.After(time.Second):
			t.Fatalf("%s: nothing accepted", tc.cfg.URI)
		}
	}
}

func TestDialerFor_Remote(t *testing.T) {
	for _, tc := range []struct {
		uri, dialer string // dialer is "" when the URI must be refused
	}{
		{"qemu+tcp://h:1600/system", "*dialers.Remote"},
		{"qemu+tls://h/system?pkipath=/p&no_verify=1", "*dialers.TLS"},
		{"qemu://h/system", "*dialers.TLS"},
		{"qemu+tls://h/system?no_verify=yes", ""},
		{"qemu+ssh://h/system", ""},
		{"/var/run/libvirt/libvirt-sock", ""},
	} {
		d, name, err := dialerFor(Config{URI: tc.uri})
		switch {
		case tc.dialer == "" && err == nil:
			t.Errorf("%s: accepted", tc.uri)
		case tc.dialer == "":
		case err != nil:
			t.Errorf("%s: %v", tc.uri, err)
		case fmt.Sprintf("%T", d) != tc.dialer || name != "qemu:///system":
			t.Errorf("%s: %T opening %s", tc.uri, d, name)
		}
	}
}
