package libvirt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/libs/testkit/libvirttest"
	"limen/media-service/internal/adapters/libvirt"
	"limen/media-service/internal/domain"
)

// partFiles are the upload temporary files in dir.
func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".limen-upload-") && strings.HasSuffix(e.Name(), ".part") {
			parts = append(parts, e.Name())
		}
	}
	return parts
}

func expectNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists (%v)", path, err)
	}
}

// Until its last byte has arrived and been checked, an upload exists only under a temporary name the
// library neither lists, resolves nor deletes; then it has its final name and the temporary one is
// gone.
func TestUpload_LandsUnderATemporaryNameUntilComplete(t *testing.T) {
	ctx := context.Background()
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	const size = 256 << 10
	data := bytes.Repeat([]byte("PART"), size/4)
	r, w := io.Pipe()
	checked := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := lib.Upload(ctx, "whole.iso", size, r, func() error { close(checked); return nil })
		done <- err
	}()
	if _, err := w.Write(data[:size/2]); err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(dir, "whole.iso")
	expectNoFile(t, final)
	parts := partFiles(t, dir)
	if len(parts) != 1 {
		t.Fatalf("temporary files during the upload: %q", parts)
	}
	temp := filepath.Join(dir, parts[0])
	if _, err := lib.Resolve(ctx, temp); !errors.Is(err, domain.ErrOutsideLibrary) {
		t.Errorf("Resolve(%s): %v", temp, err)
	}
	if _, err := lib.Resolve(ctx, parts[0]); failure.KindOf(err) != failure.NotFound {
		t.Errorf("Resolve(%s): %v", parts[0], err)
	}
	if err := lib.Delete(ctx, parts[0]); failure.KindOf(err) != failure.NotFound {
		t.Errorf("Delete(%s): %v", parts[0], err)
	}
	if isos, err := lib.List(ctx); err != nil || len(isos) != 0 {
		t.Errorf("List during the upload = %+v, %v", isos, err)
	}
	if _, err := w.Write(data[size/2:]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-checked:
	default:
		t.Fatal("check was not called")
	}
	if got, err := os.ReadFile(final); err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("final file differs (%d bytes, %v)", len(got), err)
	}
	if parts := partFiles(t, dir); len(parts) != 0 {
		t.Fatalf("temporary files left: %q", parts)
	}
	if isos, err := lib.List(ctx); err != nil || len(isos) != 1 || isos[0].Name != "whole.iso" || isos[0].Size != size {
		t.Fatalf("List = %+v, %v", isos, err)
	}
}

// The libvirt connection drops in the middle of an upload (as when media-service dies): the partial
// file cannot be deleted through it, but it has no ISO name, so it is never listed or attachable;
// the next start-up removes it, and leaves alone a temporary file someone is still writing.
func TestUpload_CutOff_NeverListed_LeftoverRemovedAtStartUp(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	lib, dir := newLibrary(t, l)
	pool := filepath.Base(dir)
	dropping := libvirttest.Connect(t)
	uploader, err := libvirt.NewLibrary(clientOf(dropping), libvirt.LibraryConfig{Pool: pool, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := uploader.Upload(ctx, "cut.iso", size, r, nil)
		done <- err
	}()
	if _, err := w.Write(make([]byte, size/4)); err != nil {
		t.Fatal(err)
	}
	if err := dropping.Disconnect(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = w.Write(make([]byte, size/4)); _ = w.Close() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("an upload over a dropped connection succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upload hangs after the connection dropped")
	}

	expectNoFile(t, filepath.Join(dir, "cut.iso"))
	if isos, err := lib.List(ctx); err != nil || len(isos) != 0 {
		t.Fatalf("List after the cut = %+v, %v", isos, err)
	}
	if _, err := lib.Resolve(ctx, "cut.iso"); failure.KindOf(err) != failure.NotFound {
		t.Fatalf("Resolve(cut.iso): %v", err)
	}
	leftovers := partFiles(t, dir)
	if len(leftovers) != 1 {
		t.Fatalf("temporary files after the cut: %q", leftovers)
	}
	// Another replica's upload is being written right now.
	live := ".limen-upload-" + uuid.NewString() + ".part"
	if err := os.WriteFile(filepath.Join(dir, live), []byte("still coming"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The crash was a while ago, and media-service starts again. (libvirtd may still be writing what
	// reached it before the cut, which makes the leftover recent again: then the next start-up.)
	var parts []string
	for range 5 {
		old := time.Now().Add(-10 * time.Minute)
		if err := os.Chtimes(filepath.Join(dir, leftovers[0]), old, old); err != nil {
			t.Fatal(err)
		}
		if _, err := libvirt.NewLibrary(clientOf(l), libvirt.LibraryConfig{Pool: pool, Dir: dir}); err != nil {
			t.Fatal(err)
		}
		if parts = partFiles(t, dir); len(parts) == 1 && parts[0] == live {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("temporary files after start-up: %q, want only %s", parts, live)
}

// A check that fails (a checksum the client announced and the bytes do not match) stores nothing
// under any name.
func TestUpload_FailedCheckLeavesNothing(t *testing.T) {
	ctx := context.Background()
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	mismatch := domain.ChecksumMismatch("00", "11")
	if _, err := lib.Upload(ctx, "bad.iso", 4096, bytes.NewReader(make([]byte, 4096)), func() error { return mismatch }); !errors.Is(err, mismatch) {
		t.Fatalf("got %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Fatalf("library directory holds %v (%v)", entries, err)
	}
}

// A file that takes the name while the upload is in progress (copied in by hand, or another
// replica's upload finishing first) is neither overwritten nor mixed with the upload.
func TestUpload_NameTakenMeanwhile_NotOverwritten(t *testing.T) {
	ctx := context.Background()
	lib, dir := newLibrary(t, libvirttest.Connect(t))
	const size = 64 << 10
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := lib.Upload(ctx, "race.iso", size, r, nil)
		done <- err
	}()
	if _, err := w.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	byHand := makeISO(t, dir, "race.iso", "HAND")
	want, err := os.ReadFile(byHand)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, size/2)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := <-done; failure.KindOf(err) != failure.Conflict {
		t.Fatalf("upload over a name taken meanwhile: %v", err)
	}
	if got, err := os.ReadFile(byHand); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the file copied in was changed (%v)", err)
	}
	if parts := partFiles(t, dir); len(parts) != 0 {
		t.Fatalf("temporary files left: %q", parts)
	}
}
