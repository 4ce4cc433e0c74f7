package web

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Client is who sent a request and how, as far as the app can tell: the peer itself, or what trusted
// proxies (AppConfig.TrustedProxies) in front of the app say about it.
type Client struct {
	// IP is the client's address (see ClientIP).
	IP string
	// Proto is "http" or "https": the scheme the client used.
	Proto string
	// Host is the host (and port) the client asked for.
	Host string
}

// ParseTrustedProxies parses proxy addresses: IPs or CIDRs, surrounding spaces ignored. The first
// malformed entry is an error naming it.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, raw := range list {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an IP or CIDR", raw)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an IP or CIDR", raw)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// proxies is the set of peers whose forwarding headers are believed; NewApp hands it to each request.
type proxies struct{ prefixes []netip.Prefix }

// localProxies is the Fiber local under which NewApp's middleware puts the app's *proxies.
const localProxies = "limen.web.proxies"

// newProxies keeps the well-formed entries of list (services validate their configuration; Fiber,
// which also reads the list, skips bad entries too).
func newProxies(list []string) *proxies {
	p := &proxies{}
	for _, raw := range list {
		if prefixes, err := ParseTrustedProxies([]string{raw}); err == nil {
			p.prefixes = append(p.prefixes, prefixes...)
		}
	}
	return p
}

func (p *proxies) trusted(a netip.Addr) bool {
	if p == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, prefix := range p.prefixes {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the client's address. The peer is the client unless it is a trusted proxy; then
// X-Forwarded-For is read from the right, each entry having been added by the hop after it, and the
// first address that is not a trusted proxy is the client: whatever an untrusted client wrote further
// left is never believed. A malformed entry ends the walk at the last address known (a trusted proxy);
// when every entry is a trusted proxy, the leftmost is the client. Fiber's c.IP() instead returns the
// header as it came, or its leftmost entry, which any client can write.
func ClientIP(c *fiber.Ctx) string {
	ip, _ := walk(c)
	return ip.String()
}

// ClientOf is the client's address, scheme and host. X-Forwarded-Proto and X-Forwarded-Host are
// believed only from a trusted proxy; when they are lists, the value taken is the one added by the
// proxy that received the request from the client X-Forwarded-For named (counting from the right as
// ClientIP does; a proxy that replaces the header rather than appending leaves a single value, which
// is taken). A value that is not http/https or a plain host[:port] is ignored.
func ClientOf(c *fiber.Ctx) Client {
	ip, proto, host := AppendClient(c, nil)
	return Client{IP: ip.String(), Proto: proto, Host: string(host)}
}

// AppendClient is ClientOf for a proxy's hot path: the client's address, its scheme, and its host
// appended to dst (a copy: it stays valid when the request's headers change). It allocates nothing
// for a peer that is no trusted proxy, nor when dst has room for the host.
func AppendClient(c *fiber.Ctx, dst []byte) (ip netip.Addr, proto string, host []byte) {
	ip, hops := walk(c)
	proto = "http"
	if c.Context().IsTLS() {
		proto = "https"
	}
	if hops < 0 {
		return ip, proto, append(dst, c.Request().Host()...)
	}
	h := &c.Request().Header
	if p := strings.ToLower(pick(h.PeekAll(fiber.HeaderXForwardedProto), hops)); p == "http" || p == "https" {
		proto = p
	}
	if forwarded := pick(h.PeekAll(fiber.HeaderXForwardedHost), hops); plainHost(forwarded) {
		return ip, proto, append(dst, forwarded...)
	}
	return ip, proto, append(dst, c.Request().Host()...)
}

// AppendIP appends ip as ClientIP writes it.
func AppendIP(dst []byte, ip netip.Addr) []byte {
	if !ip.IsValid() {
		return append(dst, ip.String()...)
	}
	return ip.AppendTo(dst)
}

// walk finds the client (see ClientIP). hops is how many trusted proxies stand between it and the
// peer (the peer itself not counted), or -1 when the peer is not trusted and no header counts.
func walk(c *fiber.Ctx) (client netip.Addr, hops int) {
	peer := peerAddr(c)
	p, _ := c.Locals(localProxies).(*proxies)
	if !p.trusted(peer) {
		return peer, -1
	}
	entries := listValues(c.Request().Header.PeekAll(fiber.HeaderXForwardedFor))
	client = peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := parseForwardedAddr(entries[i])
		if !ok {
			return client, hops
		}
		client, hops = a, len(entries)-1-i
		if !p.trusted(a) {
			return client, hops
		}
	}
	return client, hops
}

func peerAddr(c *fiber.Ctx) netip.Addr {
	if tcp, ok := c.Context().RemoteAddr().(*net.TCPAddr); ok {
		return tcp.AddrPort().Addr().Unmap()
	}
	a, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return a.Unmap()
}

// parseForwardedAddr reads one X-Forwarded-For entry: an IP, or an IP with a port as some proxies
// write it.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// listValues splits the lines of a list header (repeated lines are one list, in order) into trimmed
// entries.
func listValues(lines [][]byte) []string {
	var out []string
	for _, line := range lines {
		for _, v := range strings.Split(string(line), ",") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// pick is the value of a list header added by the proxy hops before the peer: the hops-th from the
// right, or the leftmost when the list is shorter.
func pick(lines [][]byte, hops int) string {
	values := listValues(lines)
	if len(values) == 0 {
		return ""
	}
	return values[max(len(values)-1-hops, 0)]
}

// plainHost accepts host[:port] with a DNS name, an IPv4 address or a bracketed IPv6 address.
func plainHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:[]", r)) {
			return false
		}
	}
	return true
}
