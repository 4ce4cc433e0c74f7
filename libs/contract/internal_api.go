package contract

import (
	"net/url"
	"strconv"
	"strings"
)

// vm-service's internal API: routes under /internal that only peer services call, presenting
// InternalTokenHeader's bearer token (LIMEN_INTERNAL_TOKEN). The gateway never routes /internal.
const (
	// InternalPrefix is the path every internal route starts with.
	InternalPrefix = "/internal"
	// InternalVMRoute answers InternalVM for a VM's uuid or numeric id.
	InternalVMRoute = InternalPrefix + "/vms/:ref"
	// InternalOwnerUsageRoute answers OwnerUsage for a user id.
	InternalOwnerUsageRoute = InternalPrefix + "/owners/:id/usage"
	// InternalOwnersUsageRoute answers OwnersUsage for the user ids in ?ids=1,2,3 (at most
	// MaxOwnersPerUsageCall), in one query.
	InternalOwnersUsageRoute = InternalPrefix + "/owners/usage"
	// InternalOwnerVMsRoute answers []InternalVM: every VM of a user id.
	InternalOwnerVMsRoute = InternalPrefix + "/owners/:id/vms"
	// InternalEjectRoute is media-service's: POST empties the VM's CD-ROM drive (recorded and announced
	// as any detach), answering 204; vm-service calls it to finish an installation.
	InternalEjectRoute = InternalPrefix + "/vms/:ref/media/eject"
)

// MaxOwnersPerUsageCall bounds ?ids= of InternalOwnersUsageRoute: one page of the admin's user list.
const MaxOwnersPerUsageCall = 200

// InternalVMPath is InternalVMRoute for ref.
func InternalVMPath(ref string) string { return InternalPrefix + "/vms/" + url.PathEscape(ref) }

// InternalOwnerUsagePath is InternalOwnerUsageRoute for a user id.
func InternalOwnerUsagePath(userID int64) string {
	return InternalPrefix + "/owners/" + strconv.FormatInt(userID, 10) + "/usage"
}

// InternalOwnersUsagePath is InternalOwnersUsageRoute for userIDs.
func InternalOwnersUsagePath(userIDs []int64) string {
	ids := make([]string, len(userIDs))
	for i, id := range userIDs {
		ids[i] = strconv.FormatInt(id, 10)
	}
	return InternalPrefix + "/owners/usage?ids=" + strings.Join(ids, ",")
}

// InternalOwnerVMsPath is InternalOwnerVMsRoute for a user id.
func InternalOwnerVMsPath(userID int64) string {
	return InternalPrefix + "/owners/" + strconv.FormatInt(userID, 10) + "/vms"
}

// InternalEjectPath is InternalEjectRoute for ref.
func InternalEjectPath(ref string) string {
	return InternalPrefix + "/vms/" + url.PathEscape(ref) + "/media/eject"
}

// OwnersUsage is what each asked-for user's VMs take, by user id (as a decimal string, JSON's only
// key type); a user with no VMs is present with zeros.
type OwnersUsage map[string]OwnerUsage

// InternalVM is what peer services learn about a VM: enough to check ownership and placement.
type InternalVM struct {
	ID      int64  `json:"id"`
	UUID    string `json:"uuid"`
	Name    string `json:"name"`
	OwnerID int64  `json:"owner_id"`
	Status  string `json:"status"`
	Host    string `json:"host"`
	CPU     int    `json:"cpu"`
	Memory  int    `json:"memory"`
}

// OwnerUsage is what one user's VMs take.
type OwnerUsage struct {
	VMs    int `json:"vms"`
	CPU    int `json:"cpu"`
	Memory int `json:"memory"`
}
