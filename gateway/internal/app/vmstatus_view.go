package app

import (
	"bytes"
	"encoding/json"
	"errors"
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
//
// The list is read into entries only once an event needs it: until then (an idle socket) the view is
// the list's bytes alone.
type vmView struct {
	unread json.RawMessage
	order  []*viewEntry
	byUUID map[string]*viewEntry
}

type viewEntry struct {
	uuid string
	id   int64
	vm   json.RawMessage
}

// newVMView is the view of a list as vm-service answers it (a JSON array of VMs).
func newVMView(list json.RawMessage) *vmView { return &vmView{unread: list} }

// read reads the list into entries, the first time. An element that is not a VM object with a uuid
// is kept where it is but can never be updated or removed. The entries are the list's own bytes, not
// copies.
func (v *vmView) read() {
	if v.byUUID != nil {
		return
	}
	list := v.unread
	v.unread, v.byUUID = nil, map[string]*viewEntry{}
	dec := json.NewDecoder(bytes.NewReader(list))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return
	}
	for dec.More() {
		start := dec.InputOffset()
		var ref struct {
			ID   int64  `json:"id"`
			UUID string `json:"uuid"`
		}
		// Not an object, or odd field types: kept, never matched. Anything else ends the list.
		if err := dec.Decode(&ref); err != nil && !errors.As(err, new(*json.UnmarshalTypeError)) {
			break
		}
		item := bytes.TrimLeft(list[start:dec.InputOffset()], ", \t\r\n")
		entry := &viewEntry{uuid: ref.UUID, id: ref.ID, vm: item}
		v.order = append(v.order, entry)
		if ref.UUID != "" {
			v.byUUID[ref.UUID] = entry
		}
	}
}

// apply records an event the client was sent.
func (v *vmView) apply(e domain.VMEvent) {
	v.read()
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
	v.read()
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
