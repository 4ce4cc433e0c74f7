package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"limen/libs/contract"
	"limen/libs/web"
	"limen/quota-service/internal/app"
	"limen/quota-service/internal/domain"
)

// Request and response bodies of the contract, kept apart from domain types.

// quotaUsage is the seed frontend's QuotaUsage.
type quotaUsage struct {
	Quota quotaBody `json:"quota"`
	Usage usageBody `json:"usage"`
}

type quotaBody struct {
	ID        int64 `json:"id"`
	UserID    int64 `json:"user_id"`
	MaxVMs    int   `json:"max_vms"`
	MaxCPU    int   `json:"max_cpu"`
	MaxMemory int   `json:"max_memory"`
}

type usageBody struct {
	VMs    int `json:"vms"`
	CPU    int `json:"cpu"`
	Memory int `json:"memory"`
}

func toQuotaUsage(q domain.Quota) quotaUsage {
	return quotaUsage{
		Quota: quotaBody{ID: q.ID, UserID: q.UserID, MaxVMs: q.Limits.VMs, MaxCPU: q.Limits.CPU, MaxMemory: q.Limits.MemoryMiB},
		Usage: usageBody{VMs: q.Usage.VMs, CPU: q.Usage.CPU, Memory: q.Usage.MemoryMiB},
	}
}

func toReservation(r domain.Reservation) contract.QuotaReservation {
	return contract.QuotaReservation{Key: r.Key, UserID: r.UserID, VMUUID: r.VM.String(), VMs: r.Change.VMs, CPU: r.Change.CPU,
		Memory: r.Change.MemoryMiB, State: string(r.State), ExpiresAt: r.ExpiresAt.UTC()}
}

// setRequest keeps its numbers raw, so that a fraction is refused as such rather than as a wrong type.
type setRequest struct {
	UserID    json.RawMessage `json:"user_id"`
	MaxVMs    json.RawMessage `json:"max_vms"`
	MaxCPU    json.RawMessage `json:"max_cpu"`
	MaxMemory json.RawMessage `json:"max_memory"`
}

func (in setRequest) command() (app.SetQuota, error) {
	userID, err := wholeNumber("user_id", in.UserID)
	if err != nil {
		return app.SetQuota{}, err
	}
	if userID == nil {
		return app.SetQuota{}, web.NewError(http.StatusBadRequest, "Field 'user_id' is required")
	}
	if err := domain.ValidUserID(*userID); err != nil {
		return app.SetQuota{}, err
	}
	cmd := app.SetQuota{UserID: *userID}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  **int
	}{
		{"max_vms", in.MaxVMs, &cmd.Change.VMs},
		{"max_cpu", in.MaxCPU, &cmd.Change.CPU},
		{"max_memory", in.MaxMemory, &cmd.Change.MemoryMiB},
	} {
		n, err := wholeNumber(f.name, f.raw)
		if err != nil {
			return app.SetQuota{}, err
		}
		if n != nil {
			v := int(*n)
			*f.dst = &v
		}
	}
	return cmd, nil
}

// wholeNumber reads an optional integer field: nil when absent or null; 400 naming the field for a
// fraction or anything but a number. Integers beyond int64 are pinned to its bounds, which every
// limit's range refuses.
func wholeNumber(field string, raw json.RawMessage) (*int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, web.NewError(http.StatusBadRequest, "Invalid JSON body")
	}
	n, ok := v.(json.Number)
	if !ok {
		return nil, web.NewError(http.StatusBadRequest, fmt.Sprintf("Invalid value for field '%s': expected number", field))
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return &i, nil
	}
	// 1e3 is an integer too; 1e400 parses as an infinity (with a range error): beyond every limit.
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil && !math.IsInf(f, 0) || f != math.Trunc(f) {
		return nil, web.NewError(http.StatusBadRequest, fmt.Sprintf("Field '%s' must be an integer", field))
	}
	var i int64
	switch {
	case f >= math.MaxInt64:
		i = math.MaxInt64
	case f <= math.MinInt64:
		i = math.MinInt64
	default:
		i = int64(f)
	}
	return &i, nil
}
