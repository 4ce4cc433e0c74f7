package contract

// Topics. Every event is a CloudEvents 1.0 structured-mode JSON message keyed by its subject, with the
// integer extensions ownerid (the user whose resource changed) and sequence (growing per subject).
const (
	// TopicVMEvents carries TypeVMUpdated, TypeVMDeleted, TypeSnapshotUpdated and TypeSnapshotDeleted;
	// the subject is the VM's uuid.
	TopicVMEvents = "limen.vm.events"
	// TopicMediaEvents carries TypeMediaChanged; the subject is the VM's uuid.
	TopicMediaEvents = "limen.media.events"
	// TopicUserEvents carries TypeUserChanged, TypeUserDeleted and TypeSessionEnded; the subject is the
	// user's id.
	TopicUserEvents = "limen.user.events"
)

// Topics lists every topic, for the brokers that create them ahead of the services.
var Topics = []string{TopicVMEvents, TopicMediaEvents, TopicUserEvents}

// Event types.
const (
	// TypeVMUpdated: a VM was created or changed; the data is the VM as GET /api/vms/{uuid} shows it
	// (at least VMRef).
	TypeVMUpdated = "limen.vm.updated"
	// TypeVMDeleted: a VM is gone; the data is VMRef.
	TypeVMDeleted = "limen.vm.deleted"
	// TypeSnapshotUpdated: a snapshot of a VM was taken; the data is the snapshot as
	// GET /api/vms/{uuid}/snapshots lists it (at least SnapshotRef). Its sequence numbers the VM's
	// snapshot events apart from the VM's own (updates and deletion).
	TypeSnapshotUpdated = "limen.vm.snapshot.updated"
	// TypeSnapshotDeleted: a snapshot is gone (deleted, or found missing on the hypervisor); the data
	// is the snapshot as last listed. A deleted VM's snapshots go with it, announced by TypeVMDeleted
	// alone.
	TypeSnapshotDeleted = "limen.vm.snapshot.deleted"
	// TypeMediaChanged: a VM's CD-ROM drive changed; the data is MediaChange.
	TypeMediaChanged = "limen.media.changed"
	// TypeUserChanged: a user's role, approval or password changed, so their older tokens are void;
	// the data is UserChange.
	TypeUserChanged = "limen.user.changed"
	// TypeUserDeleted: a user is gone, with every token; the data is UserChange.
	TypeUserDeleted = "limen.user.deleted"
	// TypeSessionEnded: one login (refresh-token family) ended; the data is UserChange with SessionID.
	TypeSessionEnded = "limen.session.ended"
)

// CloudEvent extensions every LIMEN event carries.
const (
	ExtensionOwnerID  = "ownerid"
	ExtensionSequence = "sequence"
)

// VMRef is the part of a VM event's data every reader may rely on.
type VMRef struct {
	ID   int64  `json:"id"`
	UUID string `json:"uuid"`
}

// SnapshotRef is the part of a snapshot event's data every reader may rely on.
type SnapshotRef struct {
	ID     int64  `json:"id"`
	VMUUID string `json:"vm_uuid"`
}

// MediaChange is the data of TypeMediaChanged: what the WebSocket pushes as media_update.
type MediaChange struct {
	VMUUID    string `json:"vm_uuid"`
	MediaPath string `json:"media_path"`
	Attached  bool   `json:"attached"`
}

// UserChange is the data of the events on TopicUserEvents.
type UserChange struct {
	UserID       int64  `json:"user_id"`
	TokenVersion int64  `json:"token_version"`
	SessionID    string `json:"session_id,omitempty"`
	// DeleteVMs is set on a deletion the admin asked to take the user's VMs along.
	DeleteVMs bool `json:"delete_vms,omitempty"`
}
