package domain_test

import (
	"testing"

	"limen/media-service/internal/domain"
)

func TestParseAction_RefusesOtherActionsByName(t *testing.T) {
	if a, err := domain.ParseAction("attach"); err != nil || a != domain.ActionAttach {
		t.Fatal(a, err)
	}
	_, err := domain.ParseAction("eject")
	if err == nil || err.Error() != "Invalid action: eject. Valid actions: attach, detach" {
		t.Fatalf("got %v", err)
	}
}

func TestCheckRequestedPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"ubuntu.iso":                  true,
		"/srv/isos/ubuntu.iso":        true,
		"/srv/isos/../etc/passwd":     false,
		"/srv/isos/./ubuntu.iso":      false,
		"isos/ubuntu.iso":             false,
		"../ubuntu.iso":               false,
		"/srv/isos/ubuntu.iso\x00.sh": false,
	} {
		if err := domain.CheckRequestedPath(p); (err == nil) != ok {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func TestValidateISOName(t *testing.T) {
	for name, ok := range map[string]bool{
		"ubuntu-24.04.1-live-server-amd64.iso": true,
		"Windows 11 (x64).ISO":                 false,
		"Win11_23H2.ISO":                       true,
		".hidden.iso":                          false,
		"a/b.iso":                              false,
		"readme.txt":                           false,
		"":                                     false,
	} {
		if err := domain.ValidateISOName(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}
