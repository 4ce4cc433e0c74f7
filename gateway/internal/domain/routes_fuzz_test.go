package domain_test

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"

	"limen/gateway/internal/domain"
)

// fuzzMethods are the methods a route can depend on; the fuzzer picks one by index.
var fuzzMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"}

// FuzzResolve: whatever raw path arrives, Resolve either refuses it (ErrBadPath, ErrNotRouted) or
// routes it by its decoded segments alone, to a service under /api other than /internal or, for
// reading one of its own few public routes, to the gateway itself, and the decoded path is already
// clean, so a service that decodes and normalises it (fasthttp does both) routes exactly the path
// the gateway judged. Seeds: testdata/fuzz/FuzzResolve.
func FuzzResolve(f *testing.F) {
	f.Fuzz(func(t *testing.T, m uint8, rawPath string) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		route, err := domain.Resolve(method, rawPath)
		if err != nil {
			if !errors.Is(err, domain.ErrBadPath) && !errors.Is(err, domain.ErrNotRouted) {
				t.Fatalf("%s %q: unexpected error %v", method, rawPath, err)
			}
			if route != (domain.Route{}) {
				t.Fatalf("%s %q: refused (%v) but routed %+v", method, rawPath, err, route)
			}
			return
		}
		decoded, derr := url.PathUnescape(rawPath)
		if !strings.HasPrefix(rawPath, "/") || derr != nil {
			t.Fatalf("%s %q: routed %+v although it is no decodable absolute path (%v)", method, rawPath, route, derr)
		}
		trailing := strings.HasSuffix(decoded, "/")
		segments := strings.Split(strings.TrimSuffix(decoded[1:], "/"), "/")
		for _, s := range segments {
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "\\\x00") {
				t.Fatalf("%s %q: routed %+v with segment %q", method, rawPath, route, s)
			}
		}
		if len(segments) < 2 || segments[0] != "api" || segments[1] == "internal" {
			t.Fatalf("%s %q: routed %+v outside /api or into /internal", method, rawPath, route)
		}
		// A service decodes and normalises the path; nothing may change (no climbing, no doubled slash).
		if clean := path.Clean(decoded); clean != strings.TrimSuffix(decoded, "/") {
			t.Fatalf("%s %q: decoded %q is not clean (%q): a service would route another path", method, rawPath, decoded, clean)
		}
		// Another spelling of the same segments routes the same: the plain one.
		plain := make([]string, len(segments))
		for i, s := range segments {
			plain[i] = url.PathEscape(s)
		}
		canonical := "/" + strings.Join(plain, "/")
		if trailing {
			canonical += "/"
		}
		if again, err := domain.Resolve(method, canonical); err != nil || again != route {
			t.Fatalf("%s %q routes %+v, its plain spelling %q routes %+v (%v)", method, rawPath, route, canonical, again, err)
		}
		switch route.Upstream {
		case domain.UpstreamAuth, domain.UpstreamVM, domain.UpstreamMedia, domain.UpstreamQuota:
		case domain.UpstreamGateway:
			own := "/" + strings.Join(segments[:2], "/")
			document := (own == domain.HealthPath || own == domain.OpenAPIPath) && len(segments) == 2
			page := own == domain.DocsPath && len(segments) <= 3
			if !route.Public || method != "GET" && method != "HEAD" || !document && !page {
				t.Fatalf("%s %q: the gateway answers %+v itself", method, rawPath, route)
			}
			return
		default:
			t.Fatalf("%s %q: unknown upstream %q", method, rawPath, route.Upstream)
		}
		if route.Public && (route.Upstream != domain.UpstreamAuth || len(segments) != 3) {
			t.Fatalf("%s %q: public route %+v outside /api/auth/{register,login,refresh,jwks}", method, rawPath, route)
		}
		if route.Upload != (method == "POST" && len(segments) == 3 && segments[1] == "vms" && segments[2] == "isos") {
			t.Fatalf("%s %q: Upload %v", method, rawPath, route.Upload)
		}
	})
}
