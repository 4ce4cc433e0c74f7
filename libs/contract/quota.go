package contract

import (
	"net/url"
	"time"
)

// quota-service's internal API: the reservations every change that grows a user's usage goes
// through, with the bearer token LIMEN_INTERNAL_TOKEN like every /internal route. The flow, for a
// create or a resize of VM v by user u:
//
//  1. POST InternalReservationsRoute QuotaReserve{Key, UserID: u, VMUUID: v, the change} before
//     anything is made: 201 (200 for the same key again: it counts once) with QuotaReservation; 403
//     with the message to show the user (`Quota exceeded: <vms|cpu|memory> <used+requested>/<limit>`)
//     when it does not fit; 404 for a deleted user; 409 for a key used for another change, or whose
//     reservation was released or expired. A change that grows nothing (a shrink) needs none: the
//     VM's event carries it.
//  2. Once the VM row is written: POST InternalReservationCommitPath(key) QuotaCommit{the VM's cpu,
//     memory and version as written}. When the change failed instead (the hypervisor or the insert):
//     POST InternalReservationReleasePath(key).
//  3. When a VM is deleted: POST InternalQuotaVMReleasePath(v) QuotaVMRelease{UserID: u}: its usage
//     is freed (204).
//
// A reservation neither committed nor released before its ExpiresAt is dropped (a caller that
// crashed); usage also follows the VM events on TopicVMEvents, so a commit or release that never
// arrives is repaired from them. quota-service unreachable or answering 5xx: refuse the growth
// (QuotaUnavailableMessage), never admit it unchecked.
const (
	// InternalReservationsRoute takes a QuotaReserve (POST).
	InternalReservationsRoute = InternalPrefix + "/quota/reservations"
	// InternalReservationCommitRoute takes a QuotaCommit (POST) and answers the QuotaReservation,
	// now committed; 409 for a released one. An expired one is committed all the same (the VM exists).
	InternalReservationCommitRoute = InternalPrefix + "/quota/reservations/:key/commit"
	// InternalReservationReleaseRoute takes no body (POST) and answers the QuotaReservation, now
	// released (or expired, as it was); 409 for a committed one.
	InternalReservationReleaseRoute = InternalPrefix + "/quota/reservations/:key/release"
	// InternalQuotaVMReleaseRoute takes a QuotaVMRelease (POST): the VM is gone and its usage is freed,
	// with any reservation still pending for it; 204, also when it was already freed.
	InternalQuotaVMReleaseRoute = InternalPrefix + "/quota/vms/:uuid/release"
)

// InternalReservationCommitPath is InternalReservationCommitRoute for key.
func InternalReservationCommitPath(key string) string {
	return InternalPrefix + "/quota/reservations/" + url.PathEscape(key) + "/commit"
}

// InternalReservationReleasePath is InternalReservationReleaseRoute for key.
func InternalReservationReleasePath(key string) string {
	return InternalPrefix + "/quota/reservations/" + url.PathEscape(key) + "/release"
}

// InternalQuotaVMReleasePath is InternalQuotaVMReleaseRoute for a VM's uuid.
func InternalQuotaVMReleasePath(vmUUID string) string {
	return InternalPrefix + "/quota/vms/" + url.PathEscape(vmUUID) + "/release"
}

// MaxReservationKey is the longest reservation key; a key is made of letters, digits and . _ : -
// (a VM uuid with a prefix naming the change, say "create:<uuid>" or "resize:<uuid>:<version>").
const MaxReservationKey = 128

// QuotaReserve asks to hold a change of a user's usage. VMs, CPU and Memory (MiB) are the change,
// not the VM's size: a create is {1, cpu, memory}, a resize {0, new cpu - old, new memory - old}.
// Only growth is checked and held; a negative part takes effect at the commit.
type QuotaReserve struct {
	Key    string `json:"key"`
	UserID int64  `json:"user_id"`
	VMUUID string `json:"vm_uuid"`
	VMs    int    `json:"vms"`
	CPU    int    `json:"cpu"`
	Memory int    `json:"memory"`
}

// QuotaCommit is the VM as the committed change left it: its size and its version (the sequence of
// the VM event its write produced), so that the commit and the events agree on which is newer.
type QuotaCommit struct {
	CPU     int   `json:"cpu"`
	Memory  int   `json:"memory"`
	Version int64 `json:"version"`
}

// QuotaVMRelease names the owner of a VM that is gone.
type QuotaVMRelease struct {
	UserID int64 `json:"user_id"`
}

// QuotaReservation is a reservation as quota-service keeps it.
type QuotaReservation struct {
	Key       string    `json:"key"`
	UserID    int64     `json:"user_id"`
	VMUUID    string    `json:"vm_uuid"`
	VMs       int       `json:"vms"`
	CPU       int       `json:"cpu"`
	Memory    int       `json:"memory"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expires_at"`
}

// The states of a QuotaReservation.
const (
	ReservationPending   = "pending"
	ReservationCommitted = "committed"
	ReservationReleased  = "released"
	ReservationExpired   = "expired"
)

// QuotaUnavailableMessage is what a growth is refused with (503) while quota-service cannot be asked.
const QuotaUnavailableMessage = "Quota service unavailable"
