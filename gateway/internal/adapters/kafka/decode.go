package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/event"

	"limen/gateway/internal/domain"
	"limen/libs/contract"
)

// errIgnoredType is an event of a type the feed does not show; skipped quietly, so producers can add
// types without breaking the gateway.
var errIgnoredType = errors.New("event type not shown to clients")

// decode reads a CloudEvents 1.0 structured-mode JSON event into a domain event.
func decode(value []byte) (domain.VMEvent, error) {
	ce := event.New()
	if err := ce.UnmarshalJSON(value); err != nil {
		return domain.VMEvent{}, fmt.Errorf("not a CloudEvent: %w", err)
	}
	if err := ce.Validate(); err != nil {
		return domain.VMEvent{}, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	out := domain.VMEvent{ID: ce.ID(), VMUUID: ce.Subject()}
	var err error
	if out.OwnerID, err = int64Extension(ce, contract.ExtensionOwnerID); err != nil {
		return domain.VMEvent{}, err
	}
	if out.Seq, err = int64Extension(ce, contract.ExtensionSequence); err != nil {
		return domain.VMEvent{}, err
	}
	data := ce.Data()
	switch ce.Type() {
	case contract.TypeVMUpdated, contract.TypeVMDeleted:
		out.Kind = domain.VMUpdated
		if ce.Type() == contract.TypeVMDeleted {
			out.Kind = domain.VMDeleted
		}
		// The feed reads only the VM's reference; the rest of its public JSON is passed on untouched.
		var ref contract.VMRef
		// A deletion is known by its subject alone; an update must carry the VM.
		if len(data) > 0 || out.Kind == domain.VMUpdated {
			if err := json.Unmarshal(data, &ref); err != nil {
				return domain.VMEvent{}, fmt.Errorf("%s data: %w", ce.Type(), err)
			}
			out.VM = json.RawMessage(data)
		}
		out.VMID = ref.ID
		if out.VMUUID == "" {
			out.VMUUID = ref.UUID
		}
	case contract.TypeMediaChanged:
		out.Kind = domain.MediaChanged
		var media contract.MediaChange
		if err := json.Unmarshal(data, &media); err != nil {
			return domain.VMEvent{}, fmt.Errorf("%s data: %w", ce.Type(), err)
		}
		out.Media = domain.Media{Path: media.MediaPath, Attached: media.Attached}
		if out.VMUUID == "" {
			out.VMUUID = media.VMUUID
		}
	default:
		return domain.VMEvent{}, fmt.Errorf("%w: %s", errIgnoredType, ce.Type())
	}
	return out, out.Validate()
}

// int64Extension reads an integer extension. The SDK holds JSON numbers as CloudEvents Integers
// (int32, refusing larger ones); the canonical string form is read as well, so a producer can carry
// values beyond 32 bits as strings.
func int64Extension(ce event.Event, name string) (int64, error) {
	switch v := ce.Extensions()[name].(type) {
	case int32:
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("extension %s: %w", name, err)
		}
		return n, nil
	case nil:
		return 0, fmt.Errorf("%w: extension %s missing", domain.ErrInvalidEvent, name)
	default:
		return 0, fmt.Errorf("%w: extension %s is a %T", domain.ErrInvalidEvent, name, v)
	}
}
