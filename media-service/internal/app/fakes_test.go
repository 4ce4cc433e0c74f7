package app_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

const libraryDir = "/srv/isos"

type fakeVMs map[string]domain.VM

func (f fakeVMs) Lookup(_ context.Context, ref string) (domain.VM, error) {
	if vm, ok := f[ref]; ok {
		return vm, nil
	}
	return domain.VM{}, domain.ErrVMNotFound
}

// fakeLibrary resolves names and paths under libraryDir the way the adapter's contract says.
type fakeLibrary struct {
	isos     map[string]domain.ISO
	uploaded []byte
}

func newLibrary(names ...string) *fakeLibrary {
	l := &fakeLibrary{isos: map[string]domain.ISO{}}
	for _, n := range names {
		l.isos[n] = domain.ISO{Name: n, Path: libraryDir + "/" + n, Size: 1}
	}
	return l
}

func (l *fakeLibrary) List(context.Context) ([]domain.ISO, error) {
	var out []domain.ISO
	for _, iso := range l.isos {
		out = append(out, iso)
	}
	return out, nil
}

func (l *fakeLibrary) Resolve(_ context.Context, p string) (domain.ISO, error) {
	if !strings.Contains(p, "/") {
		if iso, ok := l.isos[p]; ok {
			return iso, nil
		}
		return domain.ISO{}, domain.ISONotFound(p)
	}
	name, ok := strings.CutPrefix(p, libraryDir+"/")
	if !ok || strings.Contains(name, "/") || !domain.IsISOName(name) {
		return domain.ISO{}, domain.ErrOutsideLibrary
	}
	if iso, ok := l.isos[name]; ok {
		return iso, nil
	}
	return domain.ISO{}, domain.ISONotFound(p)
}

func (l *fakeLibrary) Upload(_ context.Context, name string, size int64, body io.Reader) (domain.ISO, error) {
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return domain.ISO{}, err
	}
	if int64(len(data)) != size {
		return domain.ISO{}, domain.ErrUploadIncomplete
	}
	l.uploaded = data
	iso := domain.ISO{Name: name, Path: libraryDir + "/" + name, Size: size}
	l.isos[name] = iso
	return iso, nil
}

func (l *fakeLibrary) Delete(_ context.Context, name string) error {
	if _, ok := l.isos[name]; !ok {
		return domain.ISONotFound(name)
	}
	delete(l.isos, name)
	return nil
}

type fakeDrive struct {
	mu     sync.Mutex
	drives map[uuid.UUID]string
	fail   error
}

func (d *fakeDrive) Media(_ context.Context, vm uuid.UUID) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.drives[vm]
	if !ok {
		return "", domain.ErrNoCDROM
	}
	return p, nil
}

func (d *fakeDrive) set(vm uuid.UUID, p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	if _, ok := d.drives[vm]; !ok {
		return domain.ErrNoCDROM
	}
	d.drives[vm] = p
	return nil
}

func (d *fakeDrive) Insert(_ context.Context, vm uuid.UUID, p string) error { return d.set(vm, p) }
func (d *fakeDrive) Eject(_ context.Context, vm uuid.UUID) error            { return d.set(vm, "") }

func (d *fakeDrive) Holding(_ context.Context, p string) ([]uuid.UUID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uuid.UUID
	for vm, held := range d.drives {
		if held == p {
			out = append(out, vm)
		}
	}
	return out, nil
}

// fakeHistory serialises like the real one and keeps what was recorded.
type fakeHistory struct {
	mu      sync.Mutex
	changes []domain.Change
}

func (h *fakeHistory) Change(ctx context.Context, _ uuid.UUID, change func(context.Context) (domain.Change, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := change(ctx)
	if err != nil {
		return err
	}
	h.changes = append(h.changes, c)
	return nil
}

var errBoom = errors.New("boom")

var _ app.History = (*fakeHistory)(nil)
