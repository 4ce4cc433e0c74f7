package deployments

// Tenant isolation of docker-compose.yml: VM guests are hostile, so with the default
// configuration nothing of the stack but the gateway's API may be reachable from a guest (whose
// traffic reaches the host like any LAN client's), or from anywhere it need not be. These tests
// probe the network definitions the compose-spec loader resolves: for every service, what it is
// reachable from.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// The one port published on every interface of the host: the API.
const (
	publicService = "gateway"
	publicPort    = "18443"
)

// routedAllowed: the only services that may sit on a network with a route to the outside, and
// which ones. The gateway publishes the API on edge; Jaeger and Prometheus publish their UIs (on
// loopback) from telemetry, since a port cannot be published from an internal network.
var routedAllowed = map[string][]string{
	"gateway":    {"edge"},
	"jaeger":     {"telemetry"},
	"prometheus": {"telemetry"},
}

// wantReach pins, for every service, everything it is reachable from. A change of exposure must
// change this table: decide it here, deliberately.
var wantReach = map[string][]string{
	"postgres":       {"network backend (internal)"},
	"kafka":          {"network backend (internal)"},
	"kafka-init":     {"network backend (internal)"},
	"auth-service":   {"network backend (internal)"},
	"vm-service":     {"network backend (internal)"},
	"media-service":  {"network backend (internal)"},
	"quota-service":  {"network backend (internal)"},
	"otel-collector": {"network backend (internal)"},
	"gateway":        {"every host interface :18443 -> 18443", "network backend (internal)", "network edge (routed)"},
	"jaeger":         {"host loopback 127.0.0.1:16686 -> 16686", "network backend (internal)", "network telemetry (routed)"},
	"prometheus":     {"host loopback 127.0.0.1:9090 -> 9090", "network backend (internal)", "network telemetry (routed)"},
}

// internalNet reports whether containers on network name have no route beyond that network:
// declared internal, created by this file (an external network's settings are not ours to see),
// and not a driver that puts containers straight on the host's network or LAN.
func internalNet(p *types.Project, name string) bool {
	n, ok := p.Networks[name]
	if !ok {
		return false
	}
	switch n.Driver {
	case "host", "macvlan", "ipvlan":
		return false
	}
	return n.Internal && !bool(n.External)
}

func allInterfaces(port types.ServicePortConfig) bool {
	if port.HostIP == "" {
		return true
	}
	ip := net.ParseIP(port.HostIP)
	return ip == nil || ip.IsUnspecified()
}

func loopbackOnly(port types.ServicePortConfig) bool {
	ip := net.ParseIP(port.HostIP)
	return ip != nil && ip.IsLoopback()
}

// netNamespace resolves network_mode service:NAME (which shares NAME's network stack) to the
// service whose networks and ports apply.
func netNamespace(t *testing.T, p *types.Project, name string) (string, types.ServiceConfig) {
	t.Helper()
	seen := map[string]bool{}
	for {
		s := p.Services[name]
		target, ok := strings.CutPrefix(s.NetworkMode, types.NetworkModeServicePrefix)
		if !ok {
			return name, s
		}
		if seen[name] {
			t.Fatalf("network_mode cycle through %s", name)
		}
		seen[name] = true
		if _, ok := p.Services[target]; !ok {
			t.Fatalf("%s: network_mode %s names no service", name, s.NetworkMode)
		}
		name = target
	}
}

// effectiveNetworks are the networks whose traffic reaches service name.
func effectiveNetworks(t *testing.T, p *types.Project, name string) []string {
	t.Helper()
	_, s := netNamespace(t, p, name)
	var nets []string
	for n := range s.Networks {
		nets = append(nets, n)
	}
	sort.Strings(nets)
	return nets
}

// reachableFrom lists everything service name can be reached from: published ports (on which
// host address) and the networks it is attached to (routed or internal).
func reachableFrom(t *testing.T, p *types.Project, name string) []string {
	t.Helper()
	owner, s := netNamespace(t, p, name)
	var from []string
	switch {
	case s.NetworkMode == "host":
		from = append(from, "the host's network stack (network_mode host): every host interface, every port")
	case s.NetworkMode == "bridge":
		from = append(from, "docker's default bridge (routed, shared with every container of the host)")
	case strings.HasPrefix(s.NetworkMode, types.NetworkModeContainerPrefix):
		from = append(from, "an unknown container's network stack ("+s.NetworkMode+")")
	}
	for _, port := range s.Ports {
		published := port.Published
		if published == "" {
			published = "(random)"
		}
		switch {
		case allInterfaces(port):
			from = append(from, fmt.Sprintf("every host interface :%s -> %d", published, port.Target))
		case loopbackOnly(port):
			from = append(from, fmt.Sprintf("host loopback %s:%s -> %d", port.HostIP, published, port.Target))
		default:
			from = append(from, fmt.Sprintf("host address %s:%s -> %d", port.HostIP, published, port.Target))
		}
	}
	for _, n := range effectiveNetworks(t, p, name) {
		kind := "routed"
		if internalNet(p, n) {
			kind = "internal"
		}
		from = append(from, fmt.Sprintf("network %s (%s)", n, kind))
	}
	if owner != name {
		for i := range from {
			from[i] += " (via network_mode service:" + owner + ")"
		}
	}
	sort.Strings(from)
	return from
}

func TestIsolation_ReachabilityTable(t *testing.T) {
	p := loadProject(t)
	for name := range p.Services {
		if _, ok := wantReach[name]; !ok {
			t.Errorf("service %s is not in wantReach: decide what it may be reachable from (now: %q)", name, reachableFrom(t, p, name))
		}
	}
	for name, want := range wantReach {
		t.Run(name, func(t *testing.T) {
			if _, ok := p.Services[name]; !ok {
				t.Fatalf("service %s is gone from docker-compose.yml: drop it from wantReach", name)
			}
			got := reachableFrom(t, p, name)
			want = slices.Sorted(slices.Values(want))
			if !slices.Equal(got, want) {
				t.Errorf("%s is reachable from\n\t%q\nwant\n\t%q", name, got, want)
			}
		})
	}
}

func TestIsolation_NetworkDefinitions(t *testing.T) {
	p := loadProject(t)
	type planned struct {
		network  string
		internal bool
		why      string
	}
	tests := []planned{
		{"backend", true, "postgres, kafka and the services' direct ports sit here"},
		{"edge", false, "the gateway publishes the API from it"},
		{"telemetry", false, "Jaeger and Prometheus publish their (loopback) UIs from it"},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			n, ok := p.Networks[tt.network]
			if !ok {
				t.Fatalf("network %s is not defined (%s)", tt.network, tt.why)
			}
			if n.External {
				t.Errorf("network %s is external: its settings (internal or not) are then outside this file", tt.network)
			}
			if n.Driver != "" && n.Driver != "bridge" {
				t.Errorf("network %s: driver %q, want the default bridge", tt.network, n.Driver)
			}
			if got := internalNet(p, tt.network); got != tt.internal {
				t.Errorf("network %s: internal=%v, want %v (%s)", tt.network, got, tt.internal, tt.why)
			}
		})
	}
	for name := range p.Networks {
		if !slices.ContainsFunc(tests, func(tt planned) bool { return tt.network == name }) {
			t.Errorf("network %s is not one of the planned networks (an implicit \"default\" network means a service lacks `networks:`)", name)
		}
	}
}

// (a) Only the gateway publishes a port on all interfaces; every other published port binds
// loopback, so neither a LAN client nor a guest NATed through the host reaches it.
func TestIsolation_PublishedPorts(t *testing.T) {
	p := loadProject(t)
	for name := range p.Services {
		t.Run(name, func(t *testing.T) {
			for _, port := range p.Services[name].Ports {
				switch {
				case allInterfaces(port) && name == publicService:
					if port.Published != publicPort || port.Target != 18443 {
						t.Errorf("%s publishes %s:%d on every interface; only %s (the API) may be", name, port.Published, port.Target, publicPort)
					}
				case allInterfaces(port):
					t.Errorf("%s publishes %s:%d on every interface (host_ip %q); only %s may: bind it to 127.0.0.1", name, port.Published, port.Target, port.HostIP, publicService)
				case !loopbackOnly(port):
					t.Errorf("%s publishes %s:%d on %s, not loopback: bind it to 127.0.0.1", name, port.Published, port.Target, port.HostIP)
				}
			}
		})
	}
}

// (b) Postgres and Kafka publish nothing and are only on internal networks.
func TestIsolation_DatastoresUnpublished(t *testing.T) {
	p := loadProject(t)
	for _, name := range []string{"postgres", "kafka"} {
		t.Run(name, func(t *testing.T) {
			owner, s := netNamespace(t, p, name)
			if owner != name {
				t.Errorf("%s shares %s's network stack (network_mode %s)", name, owner, p.Services[name].NetworkMode)
			}
			if s.NetworkMode != "" {
				t.Errorf("%s: network_mode %q, want its own stack on internal networks", name, s.NetworkMode)
			}
			for _, port := range s.Ports {
				t.Errorf("%s publishes %s:%s -> %d; it must publish nothing", name, port.HostIP, port.Published, port.Target)
			}
			nets := effectiveNetworks(t, p, name)
			if len(nets) == 0 {
				t.Errorf("%s is on no network", name)
			}
			for _, n := range nets {
				if !internalNet(p, n) {
					t.Errorf("%s is on network %s, which is not internal", name, n)
				}
			}
		})
	}
}

// (c) Every network postgres, kafka or a LIMEN service other than the gateway is attached to is
// internal; so is every network of every other service, except the routed networks routedAllowed
// grants (the gateway's edge, the telemetry UIs).
func TestIsolation_OnlyInternalNetworks(t *testing.T) {
	p := loadProject(t)
	subjects := []string{"postgres", "kafka"}
	for _, name := range limenServices(p) {
		if name != publicService {
			subjects = append(subjects, name)
		}
	}
	for name := range p.Services {
		if !slices.Contains(subjects, name) {
			subjects = append(subjects, name)
		}
	}
	for _, name := range subjects {
		t.Run(name, func(t *testing.T) {
			if _, ok := p.Services[name]; !ok {
				t.Fatalf("service %s missing", name)
			}
			switch mode := p.Services[name].NetworkMode; {
			case mode == "" || strings.HasPrefix(mode, types.NetworkModeServicePrefix):
			case mode == "none":
				return
			default:
				t.Fatalf("%s: network_mode %q escapes the compose networks", name, mode)
			}
			nets := effectiveNetworks(t, p, name)
			if len(nets) == 0 {
				t.Errorf("%s is attached to no network", name)
			}
			for _, n := range nets {
				if internalNet(p, n) || slices.Contains(routedAllowed[name], n) {
					continue
				}
				t.Errorf("%s is on network %s, which is not internal (routed networks allowed for it: %v)", name, n, routedAllowed[name])
			}
		})
	}
}

// (d) No service uses the host's network stack.
func TestIsolation_NoHostNetworkMode(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		if s.NetworkMode == "host" {
			t.Errorf("%s: network_mode host puts every port it opens on every interface of the host", name)
		}
		if owner, ns := netNamespace(t, p, name); ns.NetworkMode == "host" && owner != name {
			t.Errorf("%s shares the network stack of %s, which has network_mode host", name, owner)
		}
	}
}

// (e) VMs get LIMEN's isolated user-mode networking unless the operator opts out explicitly.
func TestIsolation_VMNetworkDefault(t *testing.T) {
	p := loadProject(t)
	env := p.Services["vm-service"].Environment
	tests := []struct {
		key   string
		check func(v string) error
	}{
		{"LIMEN_VM_NETWORK", func(v string) error {
			if v != "user" {
				return fmt.Errorf("is %q, want user (QEMU user-mode networking, restrict=on: no route to the host)", v)
			}
			return nil
		}},
		{"LIMEN_VM_NETWORK_UNSAFE", func(v string) error {
			if b, err := strconv.ParseBool(v); v != "" && (err != nil || b) {
				return fmt.Errorf("is %q by default, want false: a libvirt network for guests must be an operator's explicit choice", v)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			v, ok := env[tt.key]
			if !ok || v == nil {
				t.Fatalf("vm-service does not set %s", tt.key)
			}
			if err := tt.check(*v); err != nil {
				t.Errorf("vm-service %s %v", tt.key, err)
			}
		})
	}
}

// (f) The secrets have no default, so the stack never runs with a known password or token:
// loading fails without them, and no reference to them anywhere in the file supplies a default.
func TestIsolation_SecretsRequired(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for key := range composeEnv {
		// $$ escapes a dollar: $${X} is no reference.
		use := regexp.MustCompile(`(^|[^$])\$(\{` + key + `(?:(:?[-?+])[^}]*)?\}|` + key + `\b)`)
		uses := use.FindAllStringSubmatch(string(raw), -1)
		if len(uses) == 0 {
			t.Errorf("docker-compose.yml never references %s", key)
		}
		for _, m := range uses {
			if m[3] != ":?" {
				t.Errorf("docker-compose.yml references %s as %q: every reference must be ${%s:?message} (required, non-empty), never a default", key, "$"+m[2], key)
			}
		}
	}
	for key := range composeEnv {
		for _, variant := range []string{"unset", "empty"} {
			t.Run(key+"/"+variant, func(t *testing.T) {
				env := map[string]string{}
				for k, v := range composeEnv {
					env[k] = v
				}
				delete(env, key)
				if variant == "empty" {
					env[key] = ""
				}
				_, err := loadProjectEnv(t, env)
				if err == nil {
					t.Fatalf("docker-compose.yml loads with %s %s: it must be required (${%s:?message})", key, variant, key)
				}
				if !strings.Contains(err.Error(), key) {
					t.Errorf("the error does not name %s: %v", key, err)
				}
			})
		}
	}
}

var trustWord = regexp.MustCompile(`(?i)\btrust\b`)

// (f) Postgres authenticates every connection with scram-sha-256 (never trust), and the services
// connect with the required password.
func TestIsolation_PostgresAuth(t *testing.T) {
	p := loadProject(t)
	pg := p.Services["postgres"]
	val := func(k string) string {
		if v := pg.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	if got := val("POSTGRES_PASSWORD"); got != composeEnv["POSTGRES_PASSWORD"] {
		t.Errorf("postgres: POSTGRES_PASSWORD is %q, want the variable's value", got)
	}
	for k, v := range pg.Environment {
		if v != nil && trustWord.MatchString(*v) {
			t.Errorf("postgres: %s=%q trusts connections", k, *v)
		}
	}
	for _, arg := range slices.Concat(pg.Command, pg.Entrypoint) {
		if trustWord.MatchString(arg) {
			t.Errorf("postgres: command/entrypoint %q trusts connections", arg)
		}
	}
	if m := val("POSTGRES_HOST_AUTH_METHOD"); m != "" && m != "scram-sha-256" {
		t.Errorf("postgres: POSTGRES_HOST_AUTH_METHOD=%q, want scram-sha-256", m)
	}

	// What initdb writes to pg_hba.conf; its own default for both is trust.
	auth := map[string]string{"host": "trust", "local": "trust"}
	args := strings.Fields(val("POSTGRES_INITDB_ARGS"))
	for i, a := range args {
		k, v, _ := strings.Cut(a, "=")
		if k == "-A" && i+1 < len(args) {
			k, v = "--auth", args[i+1]
		}
		switch k {
		case "--auth":
			auth["host"], auth["local"] = v, v
		case "--auth-host":
			auth["host"] = v
		case "--auth-local":
			auth["local"] = v
		}
	}
	for _, kind := range []string{"host", "local"} {
		if auth[kind] != "scram-sha-256" {
			t.Errorf("postgres: %s connections use %q (POSTGRES_INITDB_ARGS %q), want --auth-%s=scram-sha-256", kind, auth[kind], val("POSTGRES_INITDB_ARGS"), kind)
		}
	}

	wantCreds := "limen:" + composeEnv["POSTGRES_PASSWORD"] + "@postgres:"
	for _, name := range limenServices(p) {
		u := p.Services[name].Environment["DATABASE_URL"]
		if u == nil {
			continue
		}
		if !strings.Contains(*u, wantCreds) {
			t.Errorf("%s: DATABASE_URL %q does not use ${POSTGRES_PASSWORD}", name, *u)
		}
	}
}

// Isolation must not cut what the stack needs: every host:port a service names (in its
// environment, command, or a config file mounted from this repository, e.g. Prometheus's scrape
// targets and the collector's Jaeger exporter) is a service it shares a network with.
func TestIsolation_PeersShareANetwork(t *testing.T) {
	p := loadProject(t)
	var names []string
	for name := range p.Services {
		names = append(names, regexp.QuoteMeta(name))
	}
	// Longest first, so that e.g. kafka-init is not read as kafka.
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	ref := regexp.MustCompile(`(?:^|[^A-Za-z0-9_.-])(` + strings.Join(names, "|") + `):([0-9]{2,5})\b`)
	root := repoRoot(t)
	// Links the stack cannot work without: the probe must at least find these.
	mustFind := map[string]bool{
		"prometheus -> auth-service": false, "prometheus -> gateway": false, "prometheus -> otel-collector": false,
		"otel-collector -> jaeger": false, "gateway -> auth-service": false, "auth-service -> postgres": false,
		"vm-service -> kafka": false, "media-service -> vm-service": false, "auth-service -> otel-collector": false,
	}

	for name, s := range p.Services {
		texts := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				texts["environment "+k] = *v
			}
		}
		texts["command"] = strings.Join(s.Command, " ")
		texts["entrypoint"] = strings.Join(s.Entrypoint, " ")
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
				continue
			}
			data, err := os.ReadFile(v.Source)
			if err != nil {
				continue // a directory, or missing (TestCompose_MountedConfigFilesExist reports that)
			}
			var lines []string
			for _, l := range strings.Split(string(data), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(l), "#") {
					lines = append(lines, l)
				}
			}
			rel, _ := filepath.Rel(root, v.Source)
			texts[rel] = strings.Join(lines, "\n")
		}
		mine := effectiveNetworks(t, p, name)
		for where, text := range texts {
			for _, m := range ref.FindAllStringSubmatch(text, -1) {
				peer := m[1]
				if peer == name {
					continue
				}
				if _, ok := mustFind[name+" -> "+peer]; ok {
					mustFind[name+" -> "+peer] = true
				}
				theirs := effectiveNetworks(t, p, peer)
				if !slices.ContainsFunc(mine, func(n string) bool { return slices.Contains(theirs, n) }) {
					t.Errorf("%s reaches %s:%s (%s), but shares no network with it (%s on %v, %s on %v)", name, peer, m[2], where, name, mine, peer, theirs)
				}
			}
		}
	}
	for link, found := range mustFind {
		if !found {
			t.Errorf("the probe found no %s reference: docker-compose.yml or a mounted config changed, or the probe misreads them", link)
		}
	}
}
