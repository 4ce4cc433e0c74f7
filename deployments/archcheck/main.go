// Command archcheck enforces LIMEN's dependency rules:
//
//   - packages under <service>/internal/domain and <service>/internal/app use no framework or
//     driver (not Fiber, pgx, kafka-go or go-libvirt), neither directly nor through another package,
//     so the rules and use cases can be read and tested without any of them;
//   - limen/libs/contract and limen/libs/failure import nothing but the standard library, so that
//     every layer of every service may use them.
//
// Test files are not checked (`go list -deps` follows non-test imports only).
//
//	go run ./deployments/archcheck [packages]   (default ./...)
//
// It prints one line per violation, with the import chain, and exits 1 if there is any.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Forbidden are import path prefixes that inner layers must not reach.
var Forbidden = []string{
	"github.com/gofiber/",
	"github.com/jackc/pgx",
	"github.com/segmentio/kafka-go",
	"github.com/digitalocean/go-libvirt",
}

// inner matches the import paths of the layers that must stay pure.
var inner = regexp.MustCompile(`/internal/(domain|app)(/|$)`)

// StandardOnly are the shared packages every layer may import, which therefore import only the
// standard library.
var StandardOnly = []string{"limen/libs/contract", "limen/libs/failure"}

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
	Error      *struct{ Err string }
}

func main() {
	patterns := os.Args[1:]
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	pkgs, err := goList(patterns)
	if err != nil {
		fmt.Fprintf(os.Stderr, "archcheck: %v\n", err)
		os.Exit(2)
	}
	violations := Check(pkgs)
	for _, v := range violations {
		fmt.Println(v)
	}
	if len(violations) > 0 {
		fmt.Fprintf(os.Stderr, "archcheck: %d violation(s): internal/domain and internal/app must not depend on %s; %s must import only the standard library\n",
			len(violations), strings.Join(Forbidden, ", "), strings.Join(StandardOnly, " and "))
		os.Exit(1)
	}
}

func goList(patterns []string) (map[string]pkg, error) {
	args := append([]string{"list", "-e", "-deps", "-json=ImportPath,Imports,Standard,Error"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	// Warnings such as `matched no packages` are not errors here.
	if s := strings.TrimSpace(stderr.String()); s != "" {
		fmt.Fprintln(os.Stderr, s)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs, nil
}

// Check returns one line per violation: an inner-layer package that reaches a forbidden package, with
// the shortest import chain, and a StandardOnly package's import from outside the standard library.
func Check(pkgs map[string]pkg) []string {
	var out []string
	for path, p := range pkgs {
		if inner.MatchString(path) {
			if chain := chainToForbidden(pkgs, path); chain != nil {
				out = append(out, strings.Join(chain, " -> "))
			}
		}
		if slices.Contains(StandardOnly, path) {
			for _, imp := range p.Imports {
				if !pkgs[imp].Standard {
					out = append(out, path+" -> "+imp)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func isForbidden(path string) bool {
	for _, f := range Forbidden {
		if strings.HasPrefix(path, f) {
			return true
		}
	}
	return false
}

// chainToForbidden runs a breadth-first search over imports from start.
func chainToForbidden(pkgs map[string]pkg, start string) []string {
	prev := map[string]string{start: ""}
	queue := []string{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, imp := range pkgs[cur].Imports {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = cur
			if isForbidden(imp) {
				var chain []string
				for p := imp; p != ""; p = prev[p] {
					chain = append([]string{p}, chain...)
				}
				return chain
			}
			if p, ok := pkgs[imp]; ok && !p.Standard {
				queue = append(queue, imp)
			}
		}
	}
	return nil
}
