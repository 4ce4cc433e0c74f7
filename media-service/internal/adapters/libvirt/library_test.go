package libvirt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"limen/libs/failure"
	"limen/libs/testkit/libvirttest"
	"limen/media-service/internal/adapters/libvirt"
	"limen/media-service/internal/domain"
)

// stockLibrary is a library holding two ISOs next to everything that must not be offered to a guest.
func stockLibrary(t *testing.T) (*libvirt.Library, string) {
	t.Helper()
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	makeISO(t, dir, "b.iso", "B")
	makeISO(t, dir, "a.iso", "A")
	outside := mediaDir(t)
	links := map[string]string{
		"passwd.iso":   "/etc/passwd",
		"escape.iso":   makeISO(t, outside, "escape.iso", "OUT"),
		"dangling.iso": filepath.Join(outside, "gone.iso"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.iso"), 0o755); err != nil {
		t.Fatal(err)
	}
	return lib, dir
}

func TestList_OnlyISOFilesOfTheLibrary(t *testing.T) {
	lib, dir := stockLibrary(t)
	isos, err := lib.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(isos) != 2 || isos[0].Name != "a.iso" || isos[1].Name != "b.iso" {
		t.Fatalf("listed %+v, want a.iso and b.iso", isos)
	}
	for _, iso := range isos {
		fi, err := os.Stat(filepath.Join(dir, iso.Name))
		if err != nil {
			t.Fatal(err)
		}
		if iso.Path != filepath.Join(dir, iso.Name) || iso.Size != fi.Size() {
			t.Errorf("%s: path %s size %d, want %s and %d", iso.Name, iso.Path, iso.Size, filepath.Join(dir, iso.Name), fi.Size())
		}
		if d := iso.Modified.Sub(fi.ModTime()); d < -time.Second || d > time.Second || iso.Modified.Location() != time.UTC {
			t.Errorf("%s: modified %v, file says %v", iso.Name, iso.Modified, fi.ModTime())
		}
	}
}

func TestResolve(t *testing.T) {
	lib, dir := stockLibrary(t)
	ctx := context.Background()
	a := filepath.Join(dir, "a.iso")
	for _, found := range []string{"a.iso", a, dir + "//a.iso"} {
		iso, err := lib.Resolve(ctx, found)
		if err != nil || iso.Path != a || iso.Name != "a.iso" {
			t.Errorf("Resolve(%q) = %+v, %v; want %s", found, iso, err, a)
		}
	}
	for _, refused := range []string{
		dir + "/../" + filepath.Base(dir) + "/a.iso", // climbing out and back in
		dir + "/./a.iso",
		"/etc/passwd",
		"../a.iso",
		"sub/a.iso",
		filepath.Join(dir, "passwd.iso"),   // symlink to a host file
		filepath.Join(dir, "escape.iso"),   // symlink to an ISO elsewhere
		filepath.Join(dir, "dangling.iso"), // symlink to nothing
		filepath.Join(dir, "notes.txt"),
		filepath.Join(dir, "folder.iso"),
		filepath.Join(dir, "folder.iso", "inner.iso"),
		filepath.Dir(dir) + "/elsewhere.iso",
		a + "\x00",
	} {
		if iso, err := lib.Resolve(ctx, refused); !errors.Is(err, domain.ErrOutsideLibrary) {
			t.Errorf("Resolve(%q) = %+v, %v; want ErrOutsideLibrary", refused, iso, err)
		}
	}
	for _, missing := range []string{filepath.Join(dir, "missing.iso"), "missing.iso", "passwd.iso", "escape.iso", "notes.txt"} {
		_, err := lib.Resolve(ctx, missing)
		if failure.KindOf(err) != failure.NotFound || err.Error() != "ISO file not found: "+missing {
			t.Errorf("Resolve(%q): %v; want ISO file not found", missing, err)
		}
	}
}

// A library directory reached through a symlink answers to both of its names.
func TestResolve_LibraryDirectoryBehindASymlink(t *testing.T) {
	l := libvirttest.Connect(t)
	base := mediaDir(t)
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	lib := newLibraryAt(t, l, "limen-isos-linked", link)
	makeISO(t, real, "a.iso", "A")
	ctx := context.Background()
	isos, err := lib.List(ctx)
	if err != nil || len(isos) != 1 || isos[0].Path != filepath.Join(link, "a.iso") {
		t.Fatalf("List = %+v, %v", isos, err)
	}
	for _, p := range []string{filepath.Join(link, "a.iso"), filepath.Join(real, "a.iso")} {
		if iso, err := lib.Resolve(ctx, p); err != nil || iso.Path != filepath.Join(link, "a.iso") {
			t.Errorf("Resolve(%s) = %+v, %v", p, iso, err)
		}
	}
}

func TestNewLibrary_RefusesARelativeDirectory(t *testing.T) {
	if _, err := libvirt.NewLibrary(clientOf(libvirttest.Connect(t)), libvirt.LibraryConfig{Pool: "limen-isos", Dir: "isos"}); err == nil {
		t.Fatal("a relative directory was accepted")
	}
}

// chunkReader records how go-libvirt reads an upload.
type chunkReader struct {
	r           io.Reader
	reads, most int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.reads++
	c.most = max(c.most, n)
	return n, err
}

func TestUploadThenDelete(t *testing.T) {
	ctx := context.Background()
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	const size = 9 << 20
	data := bytes.Repeat([]byte("LIMEN ISO "), size/10+1)[:size]
	body := &chunkReader{r: bytes.NewReader(data)}
	iso, err := lib.Upload(ctx, "up.iso", size, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if iso.Name != "up.iso" || iso.Path != filepath.Join(dir, "up.iso") || iso.Size != size || time.Since(iso.Modified) > time.Minute {
		t.Fatalf("uploaded %+v", iso)
	}
	if body.reads < 3 || body.most >= size {
		t.Fatalf("body read %d times, at most %d bytes at once: not streamed", body.reads, body.most)
	}
	written, err := os.ReadFile(iso.Path)
	if err != nil || sha256.Sum256(written) != sha256.Sum256(data) {
		t.Fatalf("file on disk differs from the upload (%d bytes, %v)", len(written), err)
	}
	if isos, err := lib.List(ctx); err != nil || len(isos) != 1 || isos[0] != iso {
		t.Fatalf("List = %+v, %v; want %+v", isos, err, iso)
	}
	if _, err := lib.Upload(ctx, "up.iso", 3, bytes.NewReader([]byte("abc")), nil); failure.KindOf(err) != failure.Conflict {
		t.Fatalf("second upload of up.iso: %v", err)
	}

	if err := lib.Delete(ctx, "up.iso"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(iso.Path); !os.IsNotExist(err) {
		t.Fatalf("file left after delete: %v", err)
	}
	if err := lib.Delete(ctx, "up.iso"); failure.KindOf(err) != failure.NotFound {
		t.Fatalf("second delete: %v", err)
	}
}

func TestDelete_OnlyListedISOs(t *testing.T) {
	lib, dir := stockLibrary(t)
	for _, name := range []string{"passwd.iso", "notes.txt", "folder.iso", "missing.iso"} {
		if err := lib.Delete(context.Background(), name); failure.KindOf(err) != failure.NotFound {
			t.Errorf("Delete(%s): %v, want not found", name, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "passwd.iso")); err != nil {
		t.Fatalf("symlink removed: %v", err)
	}
}

// failingReader delivers some bytes, then fails as a dropped client connection does.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestUpload_IncompleteLeavesNoVolume(t *testing.T) {
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	const size = 1 << 20
	part := bytes.Repeat([]byte{7}, 100<<10)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	boom := errors.New("disk on fire")
	for _, c := range []struct {
		name string
		ctx  context.Context
		body io.Reader
		want func(error) bool
	}{
		{"short.iso", context.Background(), bytes.NewReader(part), func(err error) bool { return errors.Is(err, domain.ErrUploadIncomplete) }},
		{"dropped.iso", context.Background(), &failingReader{data: part, err: io.ErrUnexpectedEOF}, func(err error) bool { return errors.Is(err, domain.ErrUploadIncomplete) }},
		{"failed.iso", context.Background(), &failingReader{data: part, err: boom}, func(err error) bool { return errors.Is(err, boom) }},
		{"cancelled.iso", cancelled, bytes.NewReader(part), func(err error) bool { return errors.Is(err, context.Canceled) }},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := lib.Upload(c.ctx, c.name, size, c.body, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if !c.want(err) {
				t.Errorf("%s: got %v", c.name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: upload hangs", c.name)
		}
		if _, err := os.Lstat(filepath.Join(dir, c.name)); !os.IsNotExist(err) {
			t.Errorf("%s: file left behind: %v", c.name, err)
		}
	}
	if isos, err := lib.List(context.Background()); err != nil || len(isos) != 0 {
		t.Fatalf("List = %+v, %v; want nothing", isos, err)
	}
}

// libvirt lists a volume from its creation on; until its last byte arrives it must not be offered.
func TestUpload_InProgressIsNeitherListedNorResolvable(t *testing.T) {
	ctx := context.Background()
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	const size = 64 << 10
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := lib.Upload(ctx, "slow.iso", size, r, nil)
		done <- err
	}()
	if _, err := w.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	if isos, err := lib.List(ctx); err != nil || len(isos) != 0 {
		t.Errorf("List during the upload = %+v, %v", isos, err)
	}
	path := filepath.Join(dir, "slow.iso")
	if _, err := lib.Resolve(ctx, path); failure.KindOf(err) != failure.NotFound {
		t.Errorf("Resolve during the upload: %v", err)
	}
	if _, err := lib.Upload(ctx, "slow.iso", 1, bytes.NewReader([]byte{1}), nil); failure.KindOf(err) != failure.Conflict {
		t.Errorf("second upload of the same name: %v", err)
	}
	if err := lib.Delete(ctx, "slow.iso"); failure.KindOf(err) != failure.NotFound {
		t.Errorf("Delete during the upload: %v", err)
	}
	if _, err := w.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if iso, err := lib.Resolve(ctx, path); err != nil || iso.Size != size {
		t.Fatalf("Resolve after the upload = %+v, %v", iso, err)
	}
}

func TestResolve_AFileCopiedInSinceTheLastScan(t *testing.T) {
	l := libvirttest.Connect(t)
	lib, dir := newLibrary(t, l)
	if _, err := lib.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := makeISO(t, dir, "late.iso", "LATE")
	iso, err := lib.Resolve(context.Background(), path)
	if err != nil || iso.Path != path {
		t.Fatalf("by path: %+v %v", iso, err)
	}
	makeISO(t, dir, "later.iso", "LATER")
	if iso, err := lib.Resolve(context.Background(), "later.iso"); err != nil || iso.Name != "later.iso" {
		t.Fatalf("by name: %+v %v", iso, err)
	}
}
