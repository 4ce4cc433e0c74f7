package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/media-service/internal/domain"
)

// LibraryConfig says where the ISO library lives.
type LibraryConfig struct {
	// Pool is the directory storage pool over Dir ("limen-isos"), created when missing.
	Pool string
	// Dir is the library's directory (LIMEN_ISO_DIR), an absolute path on the libvirt host.
	Dir string
}

// Uploads are written to a temporary volume, .limen-upload-<uuid>.part, which is never listed,
// resolved or deleted as an ISO (not an ISO name, and refused by name besides), and renamed to its
// final name only once every byte has arrived and been checked. A temporary volume nobody has written
// for staleUploadAfter belongs to no live upload on any replica (the service drops a client idle for
// 60 s, which fails the upload and removes its file): it is a crash's leftover and is removed when
// the library starts, lists and uploads. Removing a live one by mistake (a host clock far off) only
// fails that upload: the final name is given to nothing but a complete, checked file.
const (
	uploadTempPrefix = ".limen-upload-"
	uploadTempSuffix = ".part"
	staleUploadAfter = 2 * time.Minute
)

// isUploadTemp reports whether a volume name is an upload's temporary one.
func isUploadTemp(name string) bool {
	return strings.HasPrefix(name, uploadTempPrefix) && strings.HasSuffix(name, uploadTempSuffix)
}

// Library implements app.Library.
type Library struct {
	client libvirtconn.Client
	pool   string
	dir    string

	mu sync.Mutex
	// uploading are the names this process is uploading to: a second upload of one is refused at
	// once, and a final name libvirt is still copying to (see publish) is not offered.
	uploading map[string]bool
}

// NewLibrary makes sure the library's pool exists and runs, so List works from the first request.
func NewLibrary(client libvirtconn.Client, cfg LibraryConfig) (*Library, error) {
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("ISO library directory %q is not an absolute path", cfg.Dir)
	}
	lib := &Library{client: client.ReportingAs(contract.ErrHypervisorUnavailable), pool: cfg.Pool, dir: filepath.Clean(cfg.Dir), uploading: map[string]bool{}}
	l, err := lib.client()
	if err != nil {
		return nil, err
	}
	err = libvirtconn.EnsureDirPool(l, cfg.Pool, lib.dir)
	if errors.Is(err, libvirtconn.ErrPoolElsewhere) {
		return nil, fmt.Errorf("%w: set LIMEN_ISO_DIR to its path or name another pool", err)
	}
	if err != nil {
		return nil, err
	}
	// What uploads interrupted by a crash left behind; should this fail, every list and upload sweeps
	// again.
	if l, pool, err := lib.openPool(); err == nil {
		if vols, err := listVolumes(l, pool); err == nil {
			removeStaleUploads(l, vols)
		}
	}
	return lib, nil
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
	removeStaleUploads(l, vols)
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
		if _, err := os.Lstat(v.iso.Path); realDir != "" && errors.Is(err, fs.ErrNotExist) {
			return domain.ISO{}, domain.ISONotFound(isoPath) // deleted since the lookup
		}
		return domain.ISO{}, domain.ErrOutsideLibrary
	}
	return v.iso, nil
}

func (lib *Library) Upload(ctx context.Context, name string, size int64, body io.Reader, check func() error) (domain.ISO, error) {
	l, pool, err := lib.openPool()
	if err != nil {
		return domain.ISO{}, err
	}
	if !lib.startUpload(name) {
		return domain.ISO{}, domain.ISOExists(name)
	}
	defer lib.endUpload(name)
	// Refused before any byte is read when the name is taken now; publish refuses it again, atomically,
	// should it be taken while the body flows.
	taken, err := lib.taken(l, pool, name)
	if err != nil {
		return domain.ISO{}, err
	}
	if taken {
		return domain.ISO{}, domain.ISOExists(name)
	}
	if vols, err := listVolumes(l, pool); err == nil {
		removeStaleUploads(l, vols)
	}
	temp := uploadTempPrefix + uuid.NewString() + uploadTempSuffix
	vol, err := l.StorageVolCreateXML(pool, rawVolumeXML(temp, size), 0)
	if err != nil {
		return domain.ISO{}, fmt.Errorf("create volume %s: %w", temp, err)
	}
	discard := func(cause error) (domain.ISO, error) {
		if err := l.StorageVolDelete(vol, golibvirt.StorageVolDeleteNormal); err != nil && !libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
			// Left for the stale-upload sweep; under its temporary name it is offered to nobody.
			return domain.ISO{}, errors.Join(cause, fmt.Errorf("delete the unfinished volume %s: %w", temp, err))
		}
		return domain.ISO{}, cause
	}
	src := &uploadReader{ctx: ctx, r: io.LimitReader(body, size)}
	err = streamUpload(l, vol, src, size)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		// What net/http's body returns when the client goes before Content-Length bytes.
		return discard(domain.ErrUploadIncomplete)
	case err != nil:
		return discard(fmt.Errorf("upload %s: %w", name, err))
	case src.count() < size:
		return discard(domain.ErrUploadIncomplete)
	}
	// libvirt said the stream is complete; the file itself must say so too before it gets its name.
	stored, err := lookupVolume(l, pool, temp)
	if err != nil {
		return discard(fmt.Errorf("upload %s: the uploaded volume: %w", name, err))
	}
	if lib.storedSize(stored) != size {
		return discard(domain.ErrUploadIncomplete)
	}
	if check != nil {
		if err := check(); err != nil {
			return discard(err)
		}
	}
	iso, err := lib.publish(l, pool, stored, name, size)
	if err != nil {
		return discard(err)
	}
	return iso, nil
}

// rawVolumeXML is a raw volume of size bytes. Sparse (allocation 0): the upload writes the bytes,
// there is no point in zeroing them first.
func rawVolumeXML(name string, size int64) string {
	def, _ := (&libvirtxml.StorageVolume{Name: name, Capacity: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: uint64(size)},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes"},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "raw"}}}).Marshal()
	return def
}

// taken reports whether name exists in the library's directory, as a volume or as any other file.
func (lib *Library) taken(l *golibvirt.Libvirt, pool golibvirt.StoragePool, name string) (bool, error) {
	_, err := lookupVolume(l, pool, name)
	switch {
	case err == nil:
		return true, nil
	case !libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol):
		return false, err
	}
	_, err = os.Lstat(filepath.Join(lib.dir, name))
	return err == nil, nil
}

// storedSize is the size of the volume's file: as this host sees it when the library's directory is
// visible here, else as libvirt reports it.
func (lib *Library) storedSize(v volume) int64 {
	if lib.realDir() != "" {
		if fi, err := os.Stat(v.iso.Path); err == nil {
			return fi.Size()
		}
	}
	return v.iso.Size
}

// publish gives the complete, checked temporary volume its final name. Where the library's
// directory is visible and writable here (the usual single-host set-up), that is a hard link under
// the final name, which appears atomically with all its bytes and fails when the name is taken,
// followed by the removal of the temporary name. Elsewhere (a remote libvirt host, a file system
// without hard links, no permission) libvirt copies the volume to the final name; this process hides
// that name until the copy is done, but a crash during the copy can leave a partial file under it.
func (lib *Library) publish(l *golibvirt.Libvirt, pool golibvirt.StoragePool, temp volume, name string, size int64) (domain.ISO, error) {
	if lib.realDir() != "" {
		dir := filepath.Dir(temp.iso.Path) // the same directory: a link never crosses file systems
		syncPath(temp.iso.Path)            // the bytes are on disk before any name offers them
		err := os.Link(temp.iso.Path, filepath.Join(dir, name))
		if errors.Is(err, fs.ErrExist) {
			return domain.ISO{}, domain.ISOExists(name)
		}
		if err == nil {
			syncPath(dir)
			// The final name holds the file now; a temporary name left behind (this delete failing)
			// is the sweep's.
			_ = l.StorageVolDelete(temp.vol, golibvirt.StorageVolDeleteNormal)
			if err := l.StoragePoolRefresh(pool, 0); err != nil {
				return domain.ISO{}, fmt.Errorf("refresh ISO pool %s: %w", lib.pool, err)
			}
			v, err := lookupVolume(l, pool, name)
			return v.iso, err
		}
	}
	vol, err := l.StorageVolCreateXMLFrom(pool, rawVolumeXML(name, size), temp.vol, 0)
	if libvirtconn.IsCode(err, golibvirt.ErrStorageVolExist) {
		return domain.ISO{}, domain.ISOExists(name)
	}
	if err != nil {
		return domain.ISO{}, fmt.Errorf("copy the upload to %s: %w", name, err)
	}
	_ = l.StorageVolDelete(temp.vol, golibvirt.StorageVolDeleteNormal)
	v, err := describe(l, vol)
	return v.iso, err
}

// syncPath flushes a file or directory to disk, as far as this process may open it.
func syncPath(path string) {
	if f, err := os.Open(path); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}

// removeStaleUploads deletes the temporary volumes no upload has written for staleUploadAfter.
// Failures are left for the next sweep: nothing offers these volumes meanwhile.
func removeStaleUploads(l *golibvirt.Libvirt, vols []volume) {
	for _, v := range vols {
		if isUploadTemp(v.vol.Name) && (v.iso.Modified.IsZero() || time.Since(v.iso.Modified) > staleUploadAfter) {
			_ = l.StorageVolDelete(v.vol, golibvirt.StorageVolDeleteNormal)
		}
	}
}

// errConnectionLost is an upload whose libvirt connection dropped under it.
var errConnectionLost = errors.New("libvirt connection lost during the upload")

// streamUpload is StorageVolUpload, except that it also returns when the connection drops: go-libvirt
// can then deadlock inside the call (its stream sender and its response reader wait for each other)
// and never return. src is closed before streamUpload returns, so a call left behind never reads the
// request body again.
func streamUpload(l *golibvirt.Libvirt, vol golibvirt.StorageVol, src *uploadReader, size int64) error {
	defer src.close()
	done := make(chan error, 1)
	go func() { done <- l.StorageVolUpload(vol, src, 0, uint64(size), 0) }()
	select {
	case err := <-done:
		return err
	case <-l.Disconnected():
		select {
		case err := <-done:
			return errors.Join(err, errConnectionLost)
		default:
			return errConnectionLost
		}
	}
}

// uploadReader stops the upload once the request is cancelled, as go-libvirt calls take no context,
// and counts what arrived: libvirt takes a stream that ends before the announced length as complete.
type uploadReader struct {
	ctx context.Context
	r   io.Reader

	mu     sync.Mutex // held while r is read
	n      int64
	closed bool
}

func (u *uploadReader) Read(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return 0, errConnectionLost
	}
	if err := u.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := u.r.Read(p)
	u.n += int64(n)
	return n, err
}

// close ends reading, after a read in progress.
func (u *uploadReader) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
}

func (u *uploadReader) count() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
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
	if !domain.IsISOName(v.vol.Name) || isUploadTemp(v.vol.Name) || v.def.Type != "file" || lib.isUploading(v.vol.Name) {
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
