package domain

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"limen/libs/failure"
)

// Tasks of a VM's snapshots, each claiming the VM like an action: a snapshot taken, restored or
// deleted while another action changes the machine would capture, or put back, a state half-way.
const (
	ActionSnapshot        Action = "snapshot"
	ActionSnapshotRestore Action = "snapshot_restore"
	ActionSnapshotDelete  Action = "snapshot_delete"
)

// Snapshots reports whether a is a snapshot task. The machine's lifecycle events during one are the
// task's own doing (QEMU pauses a running guest while it saves it, a restore stops and starts it), not
// news: the task's end records the state the machine is left in.
func (a Action) Snapshots() bool {
	return a == ActionSnapshot || a == ActionSnapshotRestore || a == ActionSnapshotDelete
}

// MaxSnapshotDescription is the longest description a snapshot keeps, in characters.
const MaxSnapshotDescription = 1000

var (
	// ErrSnapshotNotFound is answered for unknown snapshots and for those of other users' VMs alike.
	ErrSnapshotNotFound = failure.New(failure.NotFound, "Snapshot not found")
	// ErrSnapshotNameRequired is a snapshot asked for without a name.
	ErrSnapshotNameRequired = failure.InvalidField("name", "Snapshot name is required")
	// ErrSnapshotNameTaken is a second snapshot of one VM with the same name.
	ErrSnapshotNameTaken = failure.New(failure.Conflict, "Snapshot name already exists")
	// ErrSnapshotDescription is a description too long, or not text.
	ErrSnapshotDescription = failure.InvalidField("description",
		fmt.Sprintf("Field 'description' must be at most %d characters of text", MaxSnapshotDescription))
)

// Snapshot is a VM's state at one instant: its disk, its memory when it was running or paused, and
// its definition (CPU, memory, CD-ROM, boot order). The hypervisor holds the data; the record holds
// what the API shows and the hypervisor's name for it.
type Snapshot struct {
	ID          int64
	VMID        int64
	VMUUID      uuid.UUID
	Name        string
	Description string
	// State is the VM's status when the snapshot was taken, which a restore brings back.
	State Status
	// CPU and MemoryMiB are the definition's when the snapshot was taken, which a restore brings
	// back: what it may add to the owner's usage.
	CPU       int
	MemoryMiB int
	// Machine is the snapshot's name on the hypervisor, never shown: the user's name may change
	// meaning, this one does not.
	Machine string
	// Taken says the hypervisor has the snapshot. Until then it is being taken: its name and its place
	// under the VM's limit are held, but it is not shown.
	Taken     bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NewSnapshot checks a snapshot request for vm: a name under the VM names' rule (trimmed) and an
// optional description.
func NewSnapshot(vm *VM, name, description string, now time.Time) (*Snapshot, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, ErrSnapshotNameRequired
	}
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if !utf8.ValidString(description) || strings.ContainsRune(description, 0) ||
		utf8.RuneCountInString(description) > MaxSnapshotDescription {
		return nil, ErrSnapshotDescription
	}
	now = recordTime(now)
	return &Snapshot{
		VMID: vm.ID, VMUUID: vm.UUID, Name: name, Description: description, State: vm.Status,
		CPU: vm.CPU, MemoryMiB: vm.MemoryMiB,
		Machine: "limen-" + uuid.NewString(), CreatedAt: now, UpdatedAt: now,
	}, nil
}

// Took records that the hypervisor has the snapshot, taken with the VM in state.
func (s *Snapshot) Took(state Status, now time.Time) {
	s.Taken, s.State, s.UpdatedAt = true, state, recordTime(now)
}

// recordTime is now as the record keeps it (to the microsecond), so that a snapshot answered when it
// is taken and the same snapshot listed later show the same times.
func recordTime(now time.Time) time.Time { return now.Truncate(time.Microsecond) }

// Snapshots are one VM's snapshots, those being taken included, read under the VM's row lock: the
// rules that span them (a name once per VM, at most a limit) hold against concurrent requests, on
// every replica.
type Snapshots struct {
	List []*Snapshot
}

// SnapshotLimitReached is a snapshot beyond the VM's limit.
func SnapshotLimitReached(limit int) error {
	return failure.New(failure.Conflict, fmt.Sprintf("Snapshot limit reached: at most %d per VM", limit))
}

// Add holds s's name and place under limit.
func (ss *Snapshots) Add(s *Snapshot, limit int) error {
	for _, o := range ss.List {
		if o.Name == s.Name {
			return ErrSnapshotNameTaken
		}
	}
	if len(ss.List) >= limit {
		return SnapshotLimitReached(limit)
	}
	ss.List = append(ss.List, s)
	return nil
}

// Find is the snapshot id, nil when the VM has none of that id.
func (ss *Snapshots) Find(id int64) *Snapshot {
	for _, s := range ss.List {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Remove forgets snapshot id.
func (ss *Snapshots) Remove(id int64) {
	for i, s := range ss.List {
		if s.ID == id {
			ss.List = append(ss.List[:i], ss.List[i+1:]...)
			return
		}
	}
}

// ParseSnapshotID accepts a positive numeric id.
func ParseSnapshotID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, failure.InvalidField("id", "Invalid snapshot id: "+s)
	}
	return id, nil
}
