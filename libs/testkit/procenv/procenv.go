// Package procenv reads a running process's environment and edits a copy of it, to start another
// process as that one was started: a second replica of a stack's service, a benchmark's own pair.
package procenv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Of is the environment process pid was started with.
func Of(pid int) ([]string, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, err
	}
	return strings.FieldsFunc(string(raw), func(r rune) bool { return r == 0 }), nil
}

// Value is key's value in env, or "".
func Value(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// With is a copy of env with entries (KEY=VALUE) in place of any of the same keys.
func With(env []string, entries ...string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(entries, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	})
	return append(out, entries...)
}
