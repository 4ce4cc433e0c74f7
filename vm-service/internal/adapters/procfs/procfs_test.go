package procfs_test

import (
	"os/exec"
	"testing"

	"limen/vm-service/internal/adapters/procfs"
)

func TestGone_TellsRunningFromExitedAndReusedProcesses(t *testing.T) {
	self, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := self.Gone(self); err != nil || gone {
		t.Fatalf("this very process: gone %v (%v)", gone, err)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	exited := self
	exited.PID = cmd.Process.Pid
	if gone, err := self.Gone(exited); err != nil || !gone {
		t.Fatalf("an exited process: gone %v (%v)", gone, err)
	}
	reused := self
	reused.Start++ // this PID, but a process started at another time
	if gone, err := self.Gone(reused); err != nil || !gone {
		t.Fatalf("a reused PID: gone %v (%v)", gone, err)
	}
	for name, p := range map[string]procfs.Process{
		"another boot":      {BootID: "another", Namespace: self.Namespace, PID: exited.PID},
		"another namespace": {BootID: self.BootID, Namespace: "pid:[1]", PID: exited.PID},
		"unknown":           {},
	} {
		if self.Sees(p) {
			t.Errorf("%s: seen", name)
		}
		if gone, err := self.Gone(p); err != nil || gone {
			t.Errorf("%s: gone %v (%v); nothing can be told", name, gone, err)
		}
	}
}
