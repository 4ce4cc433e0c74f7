package domain

import (
	"encoding/json"
	"errors"
)

// VMEventKind says what a VM event reports.
type VMEventKind int

const (
	// VMUpdated: a VM was created or changed (configuration or run state).
	VMUpdated VMEventKind = iota + 1
	// VMDeleted: a VM is gone.
	VMDeleted
	// MediaChanged: a VM's CD-ROM drive got or lost an ISO.
	MediaChanged
)

// ErrInvalidEvent is an event the live status feed cannot route: no VM, no owner or no sequence.
var ErrInvalidEvent = errors.New("invalid VM event")

// VMEvent is one state change of a VM as the live status feed passes it on.
type VMEvent struct {
	Kind VMEventKind
	// ID identifies the event itself (a redelivery keeps it).
	ID string
	// VMUUID is the VM the event is about; VMID its numeric id when the event carries it.
	VMUUID string
	VMID   int64
	// OwnerID decides who may see the event.
	OwnerID int64
	// Seq grows with every change of the VM (per producer): newer state has a higher Seq.
	Seq int64
	// VM is the VM's public JSON after the change (for a deletion, its last, which may be missing),
	// passed on untouched so a client sees exactly the fields GET /api/vms shows.
	VM json.RawMessage
	// Media is the drive's state after a MediaChanged event.
	Media Media
}

// Media is the state of a VM's CD-ROM drive.
type Media struct {
	Path     string
	Attached bool
}

// Validate refuses events that could not be routed or ordered.
func (e VMEvent) Validate() error {
	switch {
	case e.Kind < VMUpdated || e.Kind > MediaChanged:
		return errors.Join(ErrInvalidEvent, errors.New("unknown kind"))
	case e.VMUUID == "":
		return errors.Join(ErrInvalidEvent, errors.New("no VM uuid"))
	case e.OwnerID <= 0:
		return errors.Join(ErrInvalidEvent, errors.New("no owner"))
	case e.Seq <= 0:
		return errors.Join(ErrInvalidEvent, errors.New("no sequence"))
	case e.Kind == VMUpdated && !json.Valid(e.VM):
		return errors.Join(ErrInvalidEvent, errors.New("no VM body"))
	}
	return nil
}

// Viewer is the user a live status connection belongs to, and which VMs it shows.
type Viewer struct {
	UserID int64
	// All: everyone's VMs; otherwise the user's own.
	All bool
}

// NewViewer is the API's rule for GET /api/vms: a user sees their own VMs, an admin too unless
// asking for everyone's (?all=true).
func NewViewer(userID int64, admin, askedAll bool) Viewer {
	return Viewer{UserID: userID, All: admin && askedAll}
}

// MaySee is the feed's visibility rule, the one its first list follows.
func (v Viewer) MaySee(e VMEvent) bool {
	return v.All || e.OwnerID > 0 && e.OwnerID == v.UserID
}

// lastSent is what a connection was sent of one VM: the newest sequence of each of the VM's
// independently numbered streams. vm-service numbers the VM's own changes (updates and the deletion)
// and media-service its drive's changes; the two counters know nothing of each other, so comparing
// across them would drop good events.
type lastSent struct {
	vm, media         int64
	sentVM, sentMedia bool
}

// SeqFilter remembers, for one connection, the newest sequence sent for each VM and refuses anything
// not newer. Kafka delivers at least once and a replica may see a VM's events again after a partition
// moves, so a redelivered or late event must not roll a client's view back. Not safe for concurrent use:
// each connection owns one.
type SeqFilter struct {
	// last is by VM uuid (a string key: the map's fast path, every event of every socket comes here).
	last map[string]lastSent
}

// NewSeqFilter starts with nothing sent. Its map is made by the first event admitted: an idle
// socket holds none.
func NewSeqFilter() *SeqFilter { return &SeqFilter{} }

// Admit reports whether e is newer than what was sent for its VM, and if so records it as sent. A
// deleted VM's last sequence is kept, so a stale update arriving after the deletion stays dropped.
func (f *SeqFilter) Admit(e VMEvent) bool {
	last := f.last[e.VMUUID]
	seq, sent := &last.vm, &last.sentVM
	if e.Kind == MediaChanged {
		seq, sent = &last.media, &last.sentMedia
	}
	if *sent && e.Seq <= *seq {
		return false
	}
	*seq, *sent = e.Seq, true
	if f.last == nil {
		f.last = map[string]lastSent{}
	}
	f.last[e.VMUUID] = last
	return true
}
