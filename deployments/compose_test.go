// Package deployments holds the deployment tooling of LIMEN; this test validates docker-compose.yml
// (no Docker engine is needed: the file is loaded with the maintained compose-spec parser).
package deployments

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var (
	// otelEnv are read by the OpenTelemetry SDK rather than by LIMEN's config structs.
	otelEnv = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
	envTag  = regexp.MustCompile(`env:"([A-Z][A-Z0-9_]*)`)
	// Each LIMEN service's port (LISTEN_ADDR inside its container).
	servicePort = map[string]string{"auth-service": "18081", "vm-service": "18082", "media-service": "18083", "quota-service": "18084", "gateway": "18443"}
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// composeEnv is the environment the tests load docker-compose.yml with: the secrets the file
// requires (no defaults), and nothing else, so every other value is the file's default.
var composeEnv = map[string]string{
	"LIMEN_ADMIN_PASSWORD": "compose-test-password",
	"LIMEN_INTERNAL_TOKEN": "compose-test-token",
	"POSTGRES_PASSWORD":    "compose-test-pg-password",
}

// loadProjectEnv loads docker-compose.yml with exactly env as the environment (neither the
// process's environment nor a .env file is read).
func loadProjectEnv(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithName("limen"),
		cli.WithWorkingDirectory(root),
		cli.WithEnv(kv),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cli.ProjectFromOptions(context.Background(), opts)
}

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadProjectEnv(t, composeEnv)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// limenServices are the services built from this repository.
func limenServices(p *types.Project) []string {
	var names []string
	for name, s := range p.Services {
		if s.Build != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func TestCompose_Loads(t *testing.T) {
	p := loadProject(t)
	if p.Name != "limen" {
		t.Errorf("project name %q, want limen", p.Name)
	}
	got := limenServices(p)
	for name := range servicePort {
		if !slices.Contains(got, name) {
			t.Errorf("service %s is not built from this repository (services built: %v)", name, got)
		}
	}
	for _, infra := range []string{"postgres", "kafka", "otel-collector", "jaeger", "prometheus"} {
		if _, ok := p.Services[infra]; !ok {
			t.Errorf("service %s is missing", infra)
		}
	}
	if img := p.Services["kafka"].Image; !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %q, want the official apache/kafka", img)
	}
}

func TestCompose_BuildsHaveDockerfileAndContext(t *testing.T) {
	p := loadProject(t)
	for _, name := range limenServices(p) {
		b := p.Services[name].Build
		ctxDir := b.Context
		if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
			t.Errorf("%s: build context %s is not a directory (%v)", name, ctxDir, err)
			continue
		}
		df := b.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(ctxDir, df)
		}
		data, err := os.ReadFile(df)
		if err != nil {
			t.Errorf("%s: Dockerfile: %v", name, err)
			continue
		}
		checkDockerfile(t, name, ctxDir, string(data))
	}
}

var copyLine = regexp.MustCompile(`(?m)^COPY\s+(.+)$`)

// checkDockerfile verifies what the compose healthchecks and the build rely on: every COPY source
// from the context exists, /probe is in the image, the final stage is distroless nonroot.
func checkDockerfile(t *testing.T, name, ctxDir, df string) {
	t.Helper()
	for _, m := range copyLine.FindAllStringSubmatch(df, -1) {
		fields := strings.Fields(m[1])
		if slices.ContainsFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--from=") }) {
			continue
		}
		var srcs []string
		for _, f := range fields[:len(fields)-1] {
			if !strings.HasPrefix(f, "--") {
				srcs = append(srcs, f)
			}
		}
		for _, src := range srcs {
			matches, _ := filepath.Glob(filepath.Join(ctxDir, src))
			if len(matches) == 0 {
				t.Errorf("%s: Dockerfile copies %s, which does not exist in the context %s", name, src, ctxDir)
			}
		}
	}
	for _, want := range []string{"/probe", "gcr.io/distroless/static-debian12:nonroot", "USER nonroot", "CGO_ENABLED=0", "GOWORK=off"} {
		if !strings.Contains(df, want) {
			t.Errorf("%s: Dockerfile lacks %q", name, want)
		}
	}
}

func TestCompose_LimenServicesHaveHealthchecks(t *testing.T) {
	p := loadProject(t)
	for _, name := range limenServices(p) {
		hc := p.Services[name].HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
			continue
		}
		// Distroless images have no shell: the check must exec /probe against the service's port.
		test := strings.Join(hc.Test, " ")
		if hc.Test[0] != "CMD" || hc.Test[1] != "/probe" {
			t.Errorf("%s: healthcheck %q, want [CMD /probe URL]", name, test)
		}
		if port := servicePort[name]; port != "" && !strings.Contains(test, ":"+port+"/") {
			t.Errorf("%s: healthcheck %q does not probe port %s", name, test, port)
		}
	}
}

// envReadBy lists the variables a service's config structs read, from their `env:"NAME"` tags.
// envReadBy is every variable the service's configuration reads: its own env tags and those of the
// settings every service embeds (libs/contract).
func envReadBy(t *testing.T, service string) []string {
	t.Helper()
	names := slices.Clone(otelEnv)
	for _, dir := range []string{service, filepath.Join("libs", "contract")} {
		err := filepath.WalkDir(filepath.Join(repoRoot(t), dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			for _, m := range envTag.FindAllSubmatch(src, -1) {
				names = append(names, string(m[1]))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func TestCompose_EnvNamesAreOnesTheCodeReads(t *testing.T) {
	p := loadProject(t)
	for name := range servicePort {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		known := envReadBy(t, name)
		for key, val := range s.Environment {
			if !slices.Contains(known, key) {
				t.Errorf("%s: sets %s, which the service does not read", name, key)
			}
			if key == "OTEL_EXPORTER_OTLP_ENDPOINT" && (val == nil || *val != "http://otel-collector:4318") {
				t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT must be http://otel-collector:4318", name)
			}
		}
		la := s.Environment["LISTEN_ADDR"]
		if la == nil || *la != "0.0.0.0:"+servicePort[name] {
			t.Errorf("%s: LISTEN_ADDR must be 0.0.0.0:%s", name, servicePort[name])
		}
	}
}

func TestCompose_GatewayPublishes18443(t *testing.T) {
	p := loadProject(t)
	for _, port := range p.Services["gateway"].Ports {
		if port.Published == "18443" && port.Target == 18443 {
			return
		}
	}
	t.Errorf("gateway does not publish 18443 (ports: %+v)", p.Services["gateway"].Ports)
}

func TestCompose_DependsOnConditionsHold(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable || len(target.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if target.Restart != "" && target.Restart != "no" {
					t.Errorf("%s waits for %s to complete, but %s restarts (%s)", name, dep, dep, target.Restart)
				}
			case types.ServiceConditionStarted:
			default:
				t.Errorf("%s -> %s: no or unknown depends_on condition %q", name, dep, d.Condition)
			}
		}
	}
	// The ordering the stack needs.
	want := map[string]map[string]string{
		"auth-service": {"postgres": types.ServiceConditionHealthy},
		"gateway":      {"auth-service": types.ServiceConditionHealthy, "kafka": types.ServiceConditionHealthy},
	}
	for svc, deps := range want {
		for dep, cond := range deps {
			if got := p.Services[svc].DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends_on %s: condition %q, want %q", svc, dep, got, cond)
			}
		}
	}
}

func TestCompose_MountedConfigFilesExist(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if strings.HasPrefix(v.Source, "/var/run/") || strings.HasPrefix(v.Source, "/var/lib/") {
				continue // the host's sockets and state (the ISO library), not files of this repository
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source %s: %v", name, v.Source, err)
			}
		}
	}
}
