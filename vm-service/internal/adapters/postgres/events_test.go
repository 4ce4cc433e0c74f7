package postgres

import (
	"encoding/json"
	"testing"
	"time"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// Other services read a VM event's data as contract.VMRef: its id and uuid must be where they look.
func TestVMEvent_DataDecodesAsTheContractsVMRef(t *testing.T) {
	vm, err := domain.NewVM(7, "web", 1, 64, domain.OSType{Name: "other", DiskGB: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	vm.ID = 42
	for _, eventType := range []string{contract.TypeVMUpdated, contract.TypeVMDeleted} {
		e := vmEvent(eventType, vm, 3)
		if e.Topic != contract.TopicVMEvents || e.Type != eventType || e.Subject != vm.UUID.String() {
			t.Fatalf("%s: %+v", eventType, e)
		}
		data, err := json.Marshal(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		var ref contract.VMRef
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatal(err)
		}
		if ref.ID != 42 || ref.UUID != vm.UUID.String() {
			t.Fatalf("%s: decoded %+v from %s", eventType, ref, data)
		}
	}
}
