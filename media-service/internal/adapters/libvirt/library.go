package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"limen/libs/libvirtconn"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

// LibraryConfig says where the ISO library lives.
type LibraryConfig struct {
	// Pool is the directory storage pool over Dir ("limen-isos"), created when missing.
	Pool string
	// Dir is the library's directory (LIMEN_ISO_DIR), an absolute path on the libvirt host.
	Dir string
}

// Library implements app.Library.
type Library struct {
	client libvirtconn.Client
	pool   string
	dir    string

	mu sync.Mutex
	// uploading are the volumes this process is still filling: libvirt lists a volume from the moment
	// it is created, and a half-written image must not be listed, resolved or deleted.
	uploading map[string]bool
}

// NewLibrary makes sure the library's pool exists and runs, so List works from the first request.
func NewLibrary(client libvirtconn.Client, cfg LibraryConfig) (*Library, error) {
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("ISO library directory %q is not an absolute path", cfg.Dir)
	}
	lib := &Library{client: client.ReportingAs(app.ErrHypervisorUnavailable), pool: cfg.Pool, dir: filepath.Clean(cfg.Dir), uploading: map[string]bool{}}
	l, err := lib.client()
	if err != nil {
		return nil, err
	}
	err = libvirtconn.EnsureDirPool(l, cfg.Pool, lib.dir)
	if errors.Is(err, libvirtconn.ErrPoolElsewhere) {
		return nil, fmt.Errorf("%w: set LIMEN_ISO_DIR to its path or name another pool", err)
	}
	return lib, err
}

// volume is one volume of the pool as libvirt describes it.
type volume struct {
	vol golibvirt.StorageVol
	def libvirtxml.StorageVolume
	iso domain.ISO
}

func (lib *Library) List(_ context.Context) ([]domain.ISO, error) {
	l, pool, err := lib.openPool()
	if err != nil {
		return nil, err
	}
	vols, err := listVolumes(l, pool)
	if err != nil {
		return nil, err
	}
	realDir := lib.realDir()
	isos := []domain.ISO{}
	for _, v := range vols {
		if lib.listable(v, realDir) {
			isos = append(isos, v.iso)
		}
	}
	slices.SortFunc(isos, func(a, b domain.ISO) int { return strings.Compare(a.Name, b.Name) })
	return isos, nil
}

func (lib *Library) Resolve(ctx context.Context, isoPath string) (domain.ISO, error) {
	if err := domain.CheckRequestedPath(isoPath); err != nil {
		return domain.ISO{}, err
	}
	if !strings.Contains(isoPath, "/") {
		isos, err := lib.List(ctx)
		if err != nil {
			return domain.ISO{}, err
		}
		for _, iso := range isos {
			if iso.Name == isoPath {
				return iso, nil
			}
		}
		return domain.ISO{}, domain.ISONotFound(isoPath)
	}
	p := filepath.Clean(isoPath)
	realDir := lib.realDir()
	// The library is flat: a dir pool holds the files directly in its directory, nothing below.
	if parent := filepath.Dir(p); parent != lib.dir && (realDir == "" || parent != realDir) {
		return domain.ISO{}, domain.ErrOutsideLibrary
	}
	name := filepath.Base(p)
	if !domain.IsISOName(name) {
		return domain.ISO{}, domain.ErrOutsideLibrary
	}
	// An attach names a file the list showed, so the last scan knows it; only a miss pays for a rescan
	// (a file copied in since).
	l, pool, err := lib.lookupPool()
	if err != nil {
		return domain.ISO{}, err
	}
	v, err := lookupVolume(l, pool, name)
	if libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
		if l, pool, err = lib.openPool(); err != nil {
			return domain.ISO{}, err
		}
		v, err = lookupVolume(l, pool, name)
	}
	switch {
	case libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol):
		// libvirt skips what it cannot use as a volume (a dangling symlink, say): a file there is
		// still not a library ISO.
		if _, err := os.Lstat(filepath.Join(lib.dir, name)); err == nil {
			return domain.ISO{}, domain.ErrOutsideLibrary
		}
		return domain.ISO{}, domain.ISONotFound(isoPath)
	case err != nil:
		return domain.ISO{}, err
	case lib.isUploading(name):
		return domain.ISO{}, domain.ISONotFound(isoPath)
	case !lib.listable(v, realDir):
		return domain.ISO{}, domain.ErrOutsideLibrary
	}
	return v.iso, nil
}

func (lib *Library) Upload(ctx context.Context, name string, size int64, body io.Reader) (domain.ISO, error) {
	l, pool, err := lib.openPool()
	if err != nil {
		return domain.ISO{}, err
	}
	if !lib.startUpload(name) {
		return domain.ISO{}, domain.ISOExists(name)
	}
	defer lib.endUpload(name)
	// Sparse (allocation 0): the upload writes the bytes, there is no point in zeroing them first.
	def, err := (&libvirtxml.StorageVolume{Name: name, Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(size)},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes"},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}}}).Marshal()
	if err != nil {
		return domain.ISO{}, err
	}
	vol, err := l.StorageVolCreateXML(pool, def, 0)
	if libvirtconn.IsCode(err, golibvirt.ErrStorageVolExist) {
		return domain.ISO{}, domain.ISOExists(name)
	}
	if err != nil {
		return domain.ISO{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	discard := func(cause error) (domain.ISO, error) {
		if err := l.StorageVolDelete(vol, golibvirt.StorageVolDeleteNormal); err != nil && !libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
			return domain.ISO{}, errors.Join(cause, fmt.Errorf("delete the unfinished volume %s: %w", name, err))
		}
		return domain.ISO{}, cause
	}
	src := &uploadReader{ctx: ctx, r: io.LimitReader(body, size)}
	err = l.StorageVolUpload(vol, src, 0, uint64(size), 0)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		// What net/http's body returns when the client goes before Content-Length bytes.
		return discard(domain.ErrUploadIncomplete)
	case err != nil:
		return discard(fmt.Errorf("upload %s: %w", name, err))
	case src.n < size:
		return discard(domain.ErrUploadIncomplete)
	}
	v, err := lookupVolume(l, pool, name)
	if err != nil {
		return discard(err)
	}
	return v.iso, nil
}

// uploadReader stops the upload once the request is cancelled, as go-libvirt calls take no context,
// and counts what arrived: libvirt takes a stream that ends before the announced length as complete.
type uploadReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (u *uploadReader) Read(p []byte) (int, error) {
	if err := u.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := u.r.Read(p)
	u.n += int64(n)
	return n, err
}

func (lib *Library) Delete(_ context.Context, name string) error {
	l, pool, err := lib.openPool()
	if err != nil {
		return err
	}
	v, err := lookupVolume(l, pool, name)
	if libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
		return domain.ISONotFound(name)
	}
	if err != nil {
		return err
	}
	if !lib.listable(v, lib.realDir()) {
		return domain.ISONotFound(name)
	}
	err = l.StorageVolDelete(v.vol, golibvirt.StorageVolDeleteNormal)
	if libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
		return domain.ISONotFound(name)
	}
	return err
}

// openPool refreshes the pool before every use: ISOs are also copied into the directory by hand, and
// libvirt only notices files on a refresh.
func (lib *Library) openPool() (*golibvirt.Libvirt, golibvirt.StoragePool, error) {
	l, pool, err := lib.lookupPool()
	if err != nil {
		return nil, golibvirt.StoragePool{}, err
	}
	if err := l.StoragePoolRefresh(pool, 0); err != nil {
		return nil, golibvirt.StoragePool{}, fmt.Errorf("refresh ISO pool %s: %w", lib.pool, err)
	}
	return l, pool, nil
}

// lookupPool is the pool as libvirt last scanned it.
func (lib *Library) lookupPool() (*golibvirt.Libvirt, golibvirt.StoragePool, error) {
	l, err := lib.client()
	if err != nil {
		return nil, golibvirt.StoragePool{}, err
	}
	pool, err := l.StoragePoolLookupByName(lib.pool)
	if err != nil {
		return nil, golibvirt.StoragePool{}, fmt.Errorf("ISO pool %s: %w", lib.pool, err)
	}
	return l, pool, nil
}

func listVolumes(l *golibvirt.Libvirt, pool golibvirt.StoragePool) ([]volume, error) {
	vols, _, err := l.StoragePoolListAllVolumes(pool, 1, 0)
	if err != nil {
		return nil, err
	}
	out := make([]volume, 0, len(vols))
	for _, vol := range vols {
		v, err := describe(l, vol)
		if libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func lookupVolume(l *golibvirt.Libvirt, pool golibvirt.StoragePool, name string) (volume, error) {
	vol, err := l.StorageVolLookupByName(pool, name)
	if err != nil {
		return volume{}, err
	}
	return describe(l, vol)
}

func describe(l *golibvirt.Libvirt, vol golibvirt.StorageVol) (volume, error) {
	desc, err := l.StorageVolGetXMLDesc(vol, 0)
	if err != nil {
		return volume{}, err
	}
	var def libvirtxml.StorageVolume
	if err := def.Unmarshal(desc); err != nil {
		return volume{}, fmt.Errorf("volume %s: %w", vol.Name, err)
	}
	mtime, err := modified(&def)
	if err != nil {
		return volume{}, err
	}
	iso := domain.ISO{Name: vol.Name, Modified: mtime}
	if def.Target != nil {
		iso.Path = def.Target.Path
	}
	if def.Capacity != nil {
		iso.Size = int64(def.Capacity.Value)
	}
	return volume{vol: vol, def: def, iso: iso}, nil
}

// listable is what a VM may be given: a complete regular file with an ISO name whose real location is
// the library itself, so a symlink cannot hand a guest some other host file.
func (lib *Library) listable(v volume, realDir string) bool {
	if !domain.IsISOName(v.vol.Name) || v.def.Type != "file" || lib.isUploading(v.vol.Name) {
		return false
	}
	if realDir == "" {
		return true // a remote host's directory: libvirt's view is all there is
	}
	real, err := filepath.EvalSymlinks(v.iso.Path)
	return err == nil && filepath.Dir(real) == realDir
}

// realDir is the library directory with symlinks resolved, "" when it is not visible from here.
func (lib *Library) realDir() string {
	real, err := filepath.EvalSymlinks(lib.dir)
	if err != nil {
		return ""
	}
	return real
}

func (lib *Library) startUpload(name string) bool {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.uploading[name] {
		return false
	}
	lib.uploading[name] = true
	return true
}

func (lib *Library) endUpload(name string) {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	delete(lib.uploading, name)
}

func (lib *Library) isUploading(name string) bool {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return lib.uploading[name]
}
