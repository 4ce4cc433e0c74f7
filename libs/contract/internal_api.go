package contract

import (
	"net/url"
	"strconv"
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
)

// InternalVMPath is InternalVMRoute for ref.
func InternalVMPath(ref string) string { return InternalPrefix + "/vms/" + url.PathEscape(ref) }

// InternalOwnerUsagePath is InternalOwnerUsageRoute for a user id.
func InternalOwnerUsagePath(userID int64) string {
	return InternalPrefix + "/owners/" + strconv.FormatInt(userID, 10) + "/usage"
}

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
