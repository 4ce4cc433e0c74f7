package domain

import (
	"strconv"

	"github.com/google/uuid"

	"limen/libs/failure"
)

// Ref is how a path names a VM: by uuid or by numeric id.
type Ref struct {
	ID   int64
	UUID uuid.UUID
}

// ParseRef accepts a uuid or a positive numeric id.
func ParseRef(s string) (Ref, error) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		if id <= 0 {
			return Ref{}, failure.InvalidField("uuid", "Invalid VM reference: "+s)
		}
		return Ref{ID: id}, nil
	}
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return Ref{}, failure.InvalidField("uuid", "Invalid VM reference: "+s)
	}
	return Ref{UUID: u}, nil
}

// ByUUID is a reference to a VM the caller already knows.
func ByUUID(id uuid.UUID) Ref { return Ref{UUID: id} }
