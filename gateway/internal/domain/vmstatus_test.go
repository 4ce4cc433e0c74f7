package domain_test

import (
	"errors"
	"testing"

	"limen/gateway/internal/domain"
)

const vmA = "11111111-1111-4111-8111-111111111111"

func update(vm string, owner, seq int64) domain.VMEvent {
	return domain.VMEvent{Kind: domain.VMUpdated, VMUUID: vm, OwnerID: owner, Seq: seq, VM: []byte(`{"uuid":"` + vm + `"}`)}
}

func TestViewer_UserSeesOnlyOwnVMs_AdminSeesAllOnlyAskingForAll(t *testing.T) {
	cases := []struct {
		name   string
		viewer domain.Viewer
		owner  int64
		want   bool
	}{
		{"owner", domain.NewViewer(7, false, false), 7, true},
		{"another user", domain.NewViewer(8, false, false), 7, false},
		{"another user asking for all", domain.NewViewer(8, false, true), 7, false},
		{"admin, another's VM", domain.NewViewer(1, true, false), 7, false},
		{"admin, own VM", domain.NewViewer(1, true, false), 1, true},
		{"admin asking for all, another's VM", domain.NewViewer(1, true, true), 7, true},
		{"no owner, user", domain.NewViewer(0, false, false), 0, false},
		{"no owner, admin", domain.NewViewer(1, true, false), 0, false},
		{"no owner, admin asking for all", domain.NewViewer(1, true, true), 0, true},
	}
	for _, tc := range cases {
		if got := tc.viewer.MaySee(update(vmA, tc.owner, 1)); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestSeqFilter_DropsStaleAndRedeliveredEvents(t *testing.T) {
	f := domain.NewSeqFilter()
	for _, step := range []struct {
		seq  int64
		want bool
	}{{5, true}, {5, false}, {3, false}, {6, true}, {4, false}, {9, true}} {
		if got := f.Admit(update(vmA, 7, step.seq)); got != step.want {
			t.Fatalf("seq %d: got %v, want %v", step.seq, got, step.want)
		}
	}
}

func TestSeqFilter_CountsEachVMOnItsOwn(t *testing.T) {
	f := domain.NewSeqFilter()
	const vmB = "22222222-2222-4222-8222-222222222222"
	if !f.Admit(update(vmA, 7, 10)) || !f.Admit(update(vmB, 7, 1)) || f.Admit(update(vmB, 7, 1)) {
		t.Fatal("one VM's sequence affected another's")
	}
}

func TestSeqFilter_MediaSequenceIsIndependentOfTheVMs(t *testing.T) {
	f := domain.NewSeqFilter()
	media := domain.VMEvent{Kind: domain.MediaChanged, VMUUID: vmA, OwnerID: 7, Seq: 2}
	if !f.Admit(update(vmA, 7, 40)) || !f.Admit(media) || f.Admit(media) {
		t.Fatal("media events must be ordered among themselves only")
	}
}

func TestSeqFilter_UpdateAfterDeletionIsStale(t *testing.T) {
	f := domain.NewSeqFilter()
	deleted := update(vmA, 7, 8)
	deleted.Kind = domain.VMDeleted
	if !f.Admit(deleted) || f.Admit(update(vmA, 7, 7)) {
		t.Fatal("a late update resurrected a deleted VM")
	}
}

func TestVMEvent_Validate(t *testing.T) {
	valid := update(vmA, 7, 1)
	if err := valid.Validate(); err != nil {
		t.Fatal(err)
	}
	media := domain.VMEvent{Kind: domain.MediaChanged, VMUUID: vmA, OwnerID: 7, Seq: 1}
	if err := media.Validate(); err != nil {
		t.Fatalf("media event needs no VM body: %v", err)
	}
	deleted := domain.VMEvent{Kind: domain.VMDeleted, VMUUID: vmA, OwnerID: 7, Seq: 2}
	if err := deleted.Validate(); err != nil {
		t.Fatalf("a deletion is known by its uuid alone: %v", err)
	}
	broken := map[string]func(*domain.VMEvent){
		"no kind":     func(e *domain.VMEvent) { e.Kind = 0 },
		"no uuid":     func(e *domain.VMEvent) { e.VMUUID = "" },
		"no owner":    func(e *domain.VMEvent) { e.OwnerID = 0 },
		"no sequence": func(e *domain.VMEvent) { e.Seq = 0 },
		"no body":     func(e *domain.VMEvent) { e.VM = nil },
		"bad body":    func(e *domain.VMEvent) { e.VM = []byte(`{`) },
	}
	for name, breakIt := range broken {
		e := update(vmA, 7, 1)
		breakIt(&e)
		if err := e.Validate(); !errors.Is(err, domain.ErrInvalidEvent) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
