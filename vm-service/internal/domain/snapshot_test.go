package domain_test

import (
	"strings"
	"testing"

	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

func TestNewSnapshot_NameRuleOfVMs_RequiredMessageOfItsOwn(t *testing.T) {
	vm := stoppedVM(t)
	for name, want := range map[string]string{
		"":                      "Snapshot name is required",
		"   ":                   "Snapshot name is required",
		"a/b":                   "Field 'name' must be 1-64 characters of letters, digits, spaces, '_', '.' or '-'",
		"../x":                  "Field 'name' must be 1-64 characters of letters, digits, spaces, '_', '.' or '-'",
		strings.Repeat("a", 65): "Field 'name' must be 1-64 characters of letters, digits, spaces, '_', '.' or '-'",
	} {
		_, err := domain.NewSnapshot(vm, name, "", now)
		if failure.KindOf(err) != failure.Invalid || err.Error() != want {
			t.Errorf("%q: got %v", name, err)
		}
	}
	for _, desc := range []string{strings.Repeat("é", domain.MaxSnapshotDescription+1), "nul\x00", "\xff"} {
		if _, err := domain.NewSnapshot(vm, "ok", desc, now); failure.KindOf(err) != failure.Invalid {
			t.Errorf("description %q: got %v", desc, err)
		}
	}
	s, err := domain.NewSnapshot(vm, "  before upgrade ", strings.Repeat("é", domain.MaxSnapshotDescription), now)
	if err != nil || s.Name != "before upgrade" || s.Taken || s.VMUUID != vm.UUID || s.CPU != vm.CPU ||
		s.MemoryMiB != vm.MemoryMiB || !strings.HasPrefix(s.Machine, "limen-") {
		t.Fatalf("got %+v %v", s, err)
	}
	other, _ := domain.NewSnapshot(vm, "before upgrade", "", now)
	if other.Machine == s.Machine {
		t.Fatal("two snapshots share a hypervisor name")
	}
}

// A VM's snapshots hold a name once, pending ones included, and at most the limit.
func TestSnapshots_NameOncePerVM_Limit(t *testing.T) {
	vm := stoppedVM(t)
	set := &domain.Snapshots{}
	add := func(name string) error {
		s, err := domain.NewSnapshot(vm, name, "", now)
		if err != nil {
			t.Fatal(err)
		}
		s.ID = int64(len(set.List) + 1)
		return set.Add(s, 2)
	}
	if err := add("a"); err != nil {
		t.Fatal(err)
	}
	if err := add("a"); failure.KindOf(err) != failure.Conflict || err.Error() != "Snapshot name already exists" {
		t.Fatalf("duplicate: %v", err)
	}
	if err := add("b"); err != nil {
		t.Fatal(err)
	}
	if err := add("c"); failure.KindOf(err) != failure.Conflict || err.Error() != "Snapshot limit reached: at most 2 per VM" {
		t.Fatalf("over the limit: %v", err)
	}
	set.Find(1).Took(domain.StatusRunning, now)
	if s := set.Find(1); !s.Taken || s.State != domain.StatusRunning {
		t.Fatalf("took: %+v", s)
	}
	set.Remove(1)
	if set.Find(1) != nil || len(set.List) != 1 {
		t.Fatalf("remove: %+v", set.List)
	}
	if err := add("a"); err != nil {
		t.Fatalf("a removed snapshot's name: %v", err)
	}
}

func TestParseSnapshotID(t *testing.T) {
	if id, err := domain.ParseSnapshotID("42"); err != nil || id != 42 {
		t.Fatalf("42: %d %v", id, err)
	}
	for _, bad := range []string{"0", "-3", "x", "1.5", "99999999999999999999"} {
		if _, err := domain.ParseSnapshotID(bad); failure.KindOf(err) != failure.Invalid || err.Error() != "Invalid snapshot id: "+bad {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
