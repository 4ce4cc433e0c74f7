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

// fakeLibrary resolves names and paths under libraryDir as app.Library documents it.
type fakeLibrary struct {
	mu       sync.Mutex
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
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []domain.ISO
	for _, iso := range l.isos {
		out = append(out, iso)
	}
	return out, nil
}

func (l *fakeLibrary) Resolve(_ context.Context, p string) (domain.ISO, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
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

func (l *fakeLibrary) Upload(_ context.Context, name string, size int64, body io.Reader, check func() error) (domain.ISO, error) {
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return domain.ISO{}, err
	}
	if int64(len(data)) != size {
		return domain.ISO{}, domain.ErrUploadIncomplete
	}
	if check != nil {
		if err := check(); err != nil {
			return domain.ISO{}, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uploaded = data
	iso := domain.ISO{Name: name, Path: libraryDir + "/" + name, Size: size}
	l.isos[name] = iso
	return iso, nil
}

func (l *fakeLibrary) Delete(_ context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
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
	// holding, when set, runs once Holding has looked at the drives, before it answers.
	holding func()
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
	var out []uuid.UUID
	for vm, held := range d.drives {
		if held == p {
			out = append(out, vm)
		}
	}
	d.mu.Unlock()
	if d.holding != nil {
		d.holding()
	}
	return out, nil
}

// fakeHistory claims and records like the real one, in memory: one change per VM at a time, and an
// attach of an ISO and its deletion never at once.
type fakeHistory struct {
	mu       sync.Mutex
	freed    *sync.Cond
	drives   map[uuid.UUID]bool // VMs whose drive is claimed
	attach   map[string]int     // attaches in progress per ISO
	deleting map[string]bool
	changes  []domain.Change
}

func newHistory() *fakeHistory {
	h := &fakeHistory{drives: map[uuid.UUID]bool{}, attach: map[string]int{}, deleting: map[string]bool{}}
	h.freed = sync.NewCond(&h.mu)
	return h
}

func (h *fakeHistory) ClaimDrive(_ context.Context, vm uuid.UUID, iso string) (app.Claim, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.drives[vm] || iso != "" && h.deleting[iso] {
		h.freed.Wait()
	}
	h.drives[vm] = true
	if iso != "" {
		h.attach[iso]++
	}
	return app.Claim{Token: uuid.New(), VM: vm, ISO: iso}, nil
}

func (h *fakeHistory) ClaimDeletion(_ context.Context, iso string) (app.Claim, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.attach[iso] > 0 || h.deleting[iso] {
		h.freed.Wait()
	}
	h.deleting[iso] = true
	return app.Claim{Token: uuid.New(), ISO: iso}, nil
}

func (h *fakeHistory) Release(_ context.Context, c app.Claim) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.end(c)
	return nil
}

func (h *fakeHistory) end(c app.Claim) {
	switch {
	case c.VM == uuid.Nil:
		delete(h.deleting, c.ISO)
	default:
		delete(h.drives, c.VM)
		if c.ISO != "" {
			h.attach[c.ISO]--
		}
	}
	h.freed.Broadcast()
}

func (h *fakeHistory) Record(_ context.Context, c app.Claim, change domain.Change) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, change)
	h.end(c)
	return nil
}

var errBoom = errors.New("boom")

var (
	_ app.History = (*fakeHistory)(nil)
	_ app.Claims  = (*fakeHistory)(nil)
)
