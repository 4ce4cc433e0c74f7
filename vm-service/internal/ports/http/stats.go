package http

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// statsResponse is a VM's load: the public LIMEN frontend's VMStats and more.
type statsResponse struct {
	VMID               int64     `json:"vm_id"`
	VMUUID             string    `json:"vm_uuid"`
	Status             string    `json:"status"`
	CPUUsagePercent    float64   `json:"cpu_usage_percent"`
	MemoryUsedMB       int64     `json:"memory_used_mb"`
	MemoryTotalMB      int64     `json:"memory_total_mb"`
	MemoryUsagePercent float64   `json:"memory_usage_percent"`
	VCPUs              int       `json:"vcpus"`
	DiskReadBytes      uint64    `json:"disk_read_bytes"`
	DiskWriteBytes     uint64    `json:"disk_write_bytes"`
	NetRxBytes         uint64    `json:"net_rx_bytes"`
	NetTxBytes         uint64    `json:"net_tx_bytes"`
	UptimeS            int64     `json:"uptime_s"`
	Timestamp          time.Time `json:"timestamp"`
}

func statsOf(s domain.Stats) statsResponse {
	return statsResponse{VMID: s.VMID, VMUUID: s.VMUUID.String(), Status: string(s.Status), CPUUsagePercent: s.CPUPercent,
		MemoryUsedMB: s.MemoryUsedMiB, MemoryTotalMB: s.MemoryMiB, MemoryUsagePercent: s.MemoryPercent, VCPUs: s.VCPUs,
		DiskReadBytes: s.DiskRead, DiskWriteBytes: s.DiskWrite, NetRxBytes: s.NetRx, NetTxBytes: s.NetTx,
		UptimeS: int64(s.Uptime / time.Second), Timestamp: s.At.UTC()}
}

func (h handlers) stats(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	s, err := h.app.Queries.GetStats.Handle(c.UserContext(), app.GetStats{Caller: callerOf(c), Ref: ref})
	if err != nil {
		return err
	}
	return c.JSON(statsOf(s))
}

func (h handlers) listStats(c *fiber.Ctx) error {
	all, err := h.app.Queries.ListStats.Handle(c.UserContext(), app.ListStats{Caller: callerOf(c), All: c.QueryBool("all")})
	if err != nil {
		return err
	}
	out := make([]statsResponse, 0, len(all))
	for _, s := range all {
		out = append(out, statsOf(s))
	}
	return c.JSON(out)
}
