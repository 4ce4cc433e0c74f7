package libvirtconn

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// dialerFor picks the transport for cfg.URI and the name to open once connected. go-libvirt's own
// libvirt.ConnectToURI does this too, but hides the dialer, and the Manager must wrap it to be able to
// close a socket whose calls hang.
func dialerFor(cfg Config) (socket.Dialer, libvirt.ConnectURI, error) {
	u, err := url.Parse(cfg.URI)
	if err != nil {
		return nil, "", fmt.Errorf("libvirt URI: %w", err)
	}
	if u.Scheme == "" {
		return nil, "", fmt.Errorf("libvirt URI %q has no driver", cfg.URI)
	}
	_, transport, _ := strings.Cut(u.Scheme, "+")
	if transport == "" {
		// libvirt's rule: a URI naming a host but no transport means TLS.
		transport = "unix"
		if u.Host != "" {
			transport = "tls"
		}
	}
	q := u.Query()
	name := libvirt.RemoteURI(u)
	switch transport {
	case "unix":
		sock := cmp.Or(cfg.Socket, q.Get("socket"), defaultSocket(u.Path))
		return dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(connectTimeout)), name, nil
	case "tcp":
		opts := []dialers.RemoteOption{dialers.WithRemoteTimeout(connectTimeout)}
		if port := u.Port(); port != "" {
			opts = append(opts, dialers.UsePort(port))
		}
		return dialers.NewRemote(u.Hostname(), opts...), name, nil
	case "tls":
		var opts []dialers.TLSOption
		if port := u.Port(); port != "" {
			opts = append(opts, dialers.UseTLSPort(port))
		}
		if dir := q.Get("pkipath"); dir != "" {
			opts = append(opts, dialers.UsePKIPath(dir))
		}
		if nv := q.Get("no_verify"); nv != "" {
			n, err := strconv.Atoi(nv)
			if err != nil {
				return nil, "", fmt.Errorf("libvirt URI: no_verify=%q", nv)
			}
			if n != 0 {
				opts = append(opts, dialers.WithInsecureNoVerify())
			}
		}
		return dialers.NewTLS(u.Hostname(), opts...), name, nil
	default:
		return nil, "", fmt.Errorf("libvirt URI %q: transport %q is not supported (unix, tcp and tls are)", cfg.URI, transport)
	}
}

// defaultSocket is where libvirt's own client looks for a local daemon; go-libvirt only knows the
// system one.
func defaultSocket(path string) string {
	if path != "/session" {
		return "/var/run/libvirt/libvirt-sock"
	}
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir, _ = os.UserCacheDir()
	}
	return filepath.Join(dir, "libvirt", "libvirt-sock")
}
