package app

import (
	"encoding/json"
	"slices"

	"limen/gateway/internal/domain"
)

// vmView is what one live status client has been told about its VMs: the list it got when it connected,
// with every update and deletion it has been sent since applied. After a deletion the client's next
// list is built from it, so a deletion costs vm-service nothing however many clients see it (fetching
// a fresh list per client turned one deletion into one GET /api/vms per open socket).
//
// Entries keep the list's order, vm-service's (ascending id); a VM first seen in an update goes where
// its id belongs. Each VM's JSON is kept as received, from the list or from the event (shared with
// every other client the event went to), so the list is exactly what GET /api/vms shows, field for
// field. Not safe for concurrent use: each session owns one.
type vmView struct {
	order  []*viewEntry
	byUUID map[string]*viewEntry
}

type viewEntry struct {
	uuid string
	id   int64
	vm   json.RawMessage
}

// newVMView reads a list as vm-service answers it (a JSON array of VMs). An element that is not a VM
// object with a uuid is kept where it is but can never be updated or removed.
func newVMView(list json.RawMessage) *vmView {
	v := &vmView{byUUID: map[string]*viewEntry{}}
	var items []json.RawMessage
	if err := json.Unmarshal(list, &items); err != nil {
		return v
	}
	v.order = make([]*viewEntry, 0, len(items))
	for _, item := range items {
		var ref struct {
			ID   int64  `json:"id"`
			UUID string `json:"uuid"`
		}
		_ = json.Unmarshal(item, &ref) // not an object, or odd field types: kept, never matched
		entry := &viewEntry{uuid: ref.UUID, id: ref.ID, vm: item}
		v.order = append(v.order, entry)
		if ref.UUID != "" {
			v.byUUID[ref.UUID] = entry
		}
	}
	return v
}

// apply records an event the client was sent.
func (v *vmView) apply(e domain.VMEvent) {
	switch e.Kind {
	case domain.VMUpdated:
		if entry, ok := v.byUUID[e.VMUUID]; ok {
			entry.vm = e.VM
			return
		}
		entry := &viewEntry{uuid: e.VMUUID, id: e.VMID, vm: e.VM}
		at := len(v.order)
		if e.VMID > 0 {
			if i := slices.IndexFunc(v.order, func(x *viewEntry) bool { return x.id > e.VMID }); i >= 0 {
				at = i
			}
		}
		v.order = slices.Insert(v.order, at, entry)
		v.byUUID[e.VMUUID] = entry
	case domain.VMDeleted:
		entry, ok := v.byUUID[e.VMUUID]
		if !ok {
			return
		}
		delete(v.byUUID, e.VMUUID)
		if i := slices.Index(v.order, entry); i >= 0 {
			v.order = slices.Delete(v.order, i, i+1)
		}
	}
}

// list is the view as a JSON array, in a buffer of its own.
func (v *vmView) list() json.RawMessage {
	size := 2
	for _, entry := range v.order {
		size += len(entry.vm) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i, entry := range v.order {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, entry.vm...)
	}
	return append(out, ']')
}
