package kafka

import "testing"

func TestDecode(t *testing.T) {
	const vm = "0f9c2d8e-7b1a-4c3e-9a5d-6e2f1b8c4a70"
	updated := `{"specversion":"1.0","type":"limen.vm.updated","subject":"` + vm + `","ownerid":5,"sequence":3,
		"data":{"id":1,"uuid":"` + vm + `","cpu":2,"memory":2048,"owner_id":5,"status":"Running"}}`
	e, ok, err := decode([]byte(updated))
	if err != nil || !ok || e.Deleted || e.VM.UUID.String() != vm || e.VM.OwnerID != 5 || e.VM.CPU != 2 || e.VM.MemoryMiB != 2048 || e.VM.Version != 3 {
		t.Errorf("updated: %+v %v %v", e, ok, err)
	}
	deleted := `{"type":"limen.vm.deleted","subject":"` + vm + `","ownerid":5,"sequence":4,"data":{"id":1,"uuid":"` + vm + `"}}`
	e, ok, err = decode([]byte(deleted))
	if err != nil || !ok || !e.Deleted || e.VM.OwnerID != 5 || e.VM.Version != 4 {
		t.Errorf("deleted: %+v %v %v", e, ok, err)
	}
	if _, ok, err := decode([]byte(`{"type":"limen.media.changed","subject":"` + vm + `"}`)); ok || err != nil {
		t.Errorf("another type: %v %v", ok, err)
	}
	for name, bad := range map[string]string{
		"not JSON":         `{`,
		"a bad subject":    `{"type":"limen.vm.updated","subject":"x","sequence":1,"data":{"owner_id":5,"cpu":1,"memory":64}}`,
		"no owner":         `{"type":"limen.vm.updated","subject":"` + vm + `","sequence":1,"data":{"cpu":1,"memory":64}}`,
		"no sequence":      `{"type":"limen.vm.updated","subject":"` + vm + `","data":{"owner_id":5,"cpu":1,"memory":64}}`,
		"a deletion alone": `{"type":"limen.vm.deleted","subject":"` + vm + `"}`,
	} {
		if _, ok, err := decode([]byte(bad)); ok || err == nil {
			t.Errorf("%s: decoded (%v, %v)", name, ok, err)
		}
	}
}
