package osfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"limen/vm-service/internal/adapters/osfile"
)

func TestLoad_DefaultHasTheContractsFour(t *testing.T) {
	c, err := osfile.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ubuntu-desktop", "ubuntu-server", "kali", "windows"} {
		if _, err := c.Lookup(name); err != nil {
			t.Errorf("%s missing: %v", name, err)
		}
	}
}

func TestLoad_FileAndItsMistakes(t *testing.T) {
	cases := map[string]string{
		"- name: alpine\n  label: Alpine\n  disk_gb: 2\n  default_memory: 256\n": "",
		"[]": "empty",
		"- name: a\n  label: A\n  disk_gb: 0\n  default_memory: 256\n":                                                           "disk_gb",
		"- name: a\n  label: A\n  disk_gb: 1\n  default_memory: 1\n":                                                             "default_memory",
		"- name: a\n  label: A\n  disk_gb: 1\n  default_memory: 64\n- name: a\n  label: B\n  disk_gb: 1\n  default_memory: 64\n": "twice",
		"- {name: a": "os types",
	}
	for content, want := range cases {
		path := filepath.Join(t.TempDir(), "os.yaml")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := osfile.Load(path)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: got %v, want error containing %q", content, err, want)
		}
	}
}
