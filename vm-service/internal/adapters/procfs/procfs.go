// Package procfs tells, from Linux's /proc, whether a process recorded earlier (by another process on
// the same machine, say) is still running.
//
// A process is named by the kernel boot it runs under (/proc/sys/kernel/random/boot_id), its PID
// namespace (/proc/self/ns/pid), its PID in that namespace and its start time (clock ticks after boot,
// field 22 of /proc/<pid>/stat). A reader that shares the boot and the PID namespace sees exactly that
// kernel's processes of that namespace in its /proc, so it can tell for certain: the process runs
// while /proc/<pid>/stat exists, started at that time and is not a zombie. A PID reused since by
// another process has another start time. Under another boot (another machine with the same host
// name, or a reboot) or another PID namespace (another container), nothing can be told.
package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Process identifies one process on one running kernel.
type Process struct {
	BootID    string
	Namespace string
	PID       int
	Start     int64
}

// root is where /proc is mounted (tests may point it elsewhere).
var root = "/proc"

// Self is this process; an error when /proc is not Linux's or does not show this process.
func Self() (Process, error) {
	boot, err := os.ReadFile(root + "/sys/kernel/random/boot_id")
	if err != nil {
		return Process{}, err
	}
	ns, err := os.Readlink(root + "/self/ns/pid")
	if err != nil {
		return Process{}, err
	}
	pid := os.Getpid()
	start, state, err := stat(pid)
	if err != nil {
		return Process{}, fmt.Errorf("this process in %s: %w", root, err)
	}
	if dead(state) {
		return Process{}, errors.New("this process shows as not running")
	}
	return Process{BootID: strings.TrimSpace(string(boot)), Namespace: ns, PID: pid, Start: start}, nil
}

// Sees reports whether self can tell whether p runs: both are known and share the boot and the PID
// namespace.
func (self Process) Sees(p Process) bool {
	return self.BootID != "" && self.Namespace != "" && p.PID > 0 &&
		p.BootID == self.BootID && p.Namespace == self.Namespace
}

// Gone reports whether p, which self Sees, no longer runs: no process has its PID, the one that has it
// started at another time (the PID was reused), or it is a zombie. An error when /proc cannot be read
// for another reason; a process self does not see is never gone.
func (self Process) Gone(p Process) (bool, error) {
	if !self.Sees(p) {
		return false, nil
	}
	start, state, err := stat(p.PID)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return start != p.Start || dead(state), nil
}

// dead states: zombie (exited, not yet reaped) and dead.
func dead(state string) bool { return state == "Z" || state == "X" || state == "x" }

// stat reads a process's state and start time from /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may hold spaces or parentheses itself, so the fields are counted after its last ')'.
func stat(pid int) (start int64, state string, err error) {
	raw, err := os.ReadFile(root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:]) // fields 3 and on: state is [0], starttime (22) is [19]
	if len(fields) < 20 {
		return 0, "", fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	return start, fields[0], nil
}
