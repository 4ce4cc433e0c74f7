package kafka

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"limen/gateway/internal/domain"
	"limen/libs/contract"
)

const vmUUID = "550e8400-e29b-41d4-a716-446655440000"

// cloudEvent builds an event the way the services' outbox relay publishes it.
func cloudEvent(t testing.TB, typ, subject string, owner, seq any, data any) []byte {
	t.Helper()
	ce := event.New()
	ce.SetID("0b3b6c2e-8f5e-4c1e-9a55-6f3f2a9e1d11")
	ce.SetSource("vm-service")
	ce.SetType(typ)
	ce.SetSubject(subject)
	ce.SetTime(time.Now())
	if owner != nil {
		ce.SetExtension("ownerid", owner)
	}
	if seq != nil {
		ce.SetExtension("sequence", seq)
	}
	if err := ce.SetData(event.ApplicationJSON, data); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func vmJSON(id int64, uuid string, owner int64) map[string]any {
	return map[string]any{"id": id, "uuid": uuid, "name": "web", "cpu": 2, "memory": 2048, "status": "Running",
		"os_type": "ubuntu-server", "owner_id": owner, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "disk_gb": 20}
}

func TestDecode_VMUpdatedKeepsThePublicJSON(t *testing.T) {
	e, err := decode(cloudEvent(t, contract.TypeVMUpdated, vmUUID, 7, 12, vmJSON(3, vmUUID, 7)))
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != domain.VMUpdated || e.VMUUID != vmUUID || e.VMID != 3 || e.OwnerID != 7 || e.Seq != 12 || e.ID == "" {
		t.Fatalf("%+v", e)
	}
	var vm map[string]any
	if err := json.Unmarshal(e.VM, &vm); err != nil || vm["status"] != "Running" || vm["disk_gb"] != float64(20) {
		t.Fatalf("VM JSON not passed on: %s", e.VM)
	}
}

func TestDecode_DeletedAndMedia(t *testing.T) {
	e, err := decode(cloudEvent(t, contract.TypeVMDeleted, vmUUID, 7, 13, vmJSON(3, vmUUID, 7)))
	if err != nil || e.Kind != domain.VMDeleted || e.VMID != 3 {
		t.Fatalf("%+v %v", e, err)
	}
	e, err = decode(cloudEvent(t, contract.TypeMediaChanged, vmUUID, 7, 2, map[string]any{"vm_uuid": vmUUID, "media_path": "/isos/d.iso", "attached": true}))
	if err != nil || e.Kind != domain.MediaChanged || e.Media.Path != "/isos/d.iso" || !e.Media.Attached || e.Seq != 2 {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestDecode_DeletionWithoutData(t *testing.T) {
	ce := event.New()
	ce.SetID("1")
	ce.SetSource("vm-service")
	ce.SetType(contract.TypeVMDeleted)
	ce.SetSubject(vmUUID)
	ce.SetExtension("ownerid", 7)
	ce.SetExtension("sequence", 4)
	raw, _ := json.Marshal(ce)
	e, err := decode(raw)
	if err != nil || e.Kind != domain.VMDeleted || e.VMUUID != vmUUID || e.VM != nil {
		t.Fatalf("%+v %v", e, err)
	}
	ce.SetType(contract.TypeVMUpdated)
	raw, _ = json.Marshal(ce)
	if _, err := decode(raw); err == nil {
		t.Fatal("an update without the VM was accepted")
	}
}

func TestDecode_UUIDFromDataWhenNoSubject(t *testing.T) {
	e, err := decode(cloudEvent(t, contract.TypeVMUpdated, "", 7, 1, vmJSON(3, vmUUID, 7)))
	if err != nil || e.VMUUID != vmUUID {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestDecode_IntegersAsStringsBeyond32Bits(t *testing.T) {
	e, err := decode(cloudEvent(t, contract.TypeVMUpdated, vmUUID, "7", "5000000000", vmJSON(3, vmUUID, 7)))
	if err != nil || e.OwnerID != 7 || e.Seq != 5_000_000_000 {
		t.Fatalf("%+v %v", e, err)
	}
}

func TestDecode_Refusals(t *testing.T) {
	cases := map[string][]byte{
		"not JSON":       []byte("hello"),
		"not an event":   []byte(`{"id":1}`),
		"no owner":       cloudEvent(t, contract.TypeVMUpdated, vmUUID, nil, 1, vmJSON(3, vmUUID, 7)),
		"no sequence":    cloudEvent(t, contract.TypeVMUpdated, vmUUID, 7, nil, vmJSON(3, vmUUID, 7)),
		"bad sequence":   cloudEvent(t, contract.TypeVMUpdated, vmUUID, 7, "x", vmJSON(3, vmUUID, 7)),
		"data not a VM":  cloudEvent(t, contract.TypeVMUpdated, vmUUID, 7, 1, []int{1}),
		"no VM anywhere": cloudEvent(t, contract.TypeVMUpdated, "", 7, 1, map[string]any{"id": 3}),
	}
	for name, raw := range cases {
		if e, err := decode(raw); err == nil {
			t.Errorf("%s: decoded %+v", name, e)
		}
	}
	if _, err := decode(cloudEvent(t, "limen.quota.changed", vmUUID, 7, 1, map[string]any{})); !errors.Is(err, errIgnoredType) {
		t.Errorf("unknown type: %v", err)
	}
}
