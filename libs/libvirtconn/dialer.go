package libvirtconn

import (
	"cmp"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// dialerFor is the Manager's dialer for cfg.
func dialerFor(cfg Config) (socket.Dialer, libvirt.ConnectURI, error) {
	return Dialer(cfg.URI, cfg.Socket, connectTimeout)
}

// Dialer picks the transport for uri and the name to open once connected; sock, when set, is the
// unix socket of a local libvirt in place of the URI's. Dialling gives up after timeout (unix and
// tcp). go-libvirt's own libvirt.ConnectToURI does this too, but hides the dialer, and its users
// must wrap it: the Manager to close a socket whose calls hang, a console to follow its packets.
func Dialer(uri, sock string, timeout time.Duration) (socket.Dialer, libvirt.ConnectURI, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, "", fmt.Errorf("libvirt URI: %w", err)
	}
	if u.Scheme == "" {
		return nil, "", fmt.Errorf("libvirt URI %q has no driver", uri)
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
		sock = cmp.Or(sock, q.Get("socket"), defaultSocket(u.Path))
		return dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(timeout)), name, nil
	case "tcp":
		opts := []dialers.RemoteOption{dialers.WithRemoteTimeout(timeout)}
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
		return nil, "", fmt.Errorf("libvirt URI %q: transport %q is not supported (unix, tcp and tls are)", uri, transport)
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
