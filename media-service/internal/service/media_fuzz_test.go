package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
)

// The fuzz targets below drive media-service as newStack builds it (the package's Postgres and
// libvirtd, the vm-service stand-in) with fuzzed {ref} path parameters, attach/eject bodies and ISO
// names, written raw on the request line over TCP. Their rule: no input is answered 5xx or panics,
// and an input that is refused changes nothing: not the database (media_changes, media_claims, the
// outbox's events; the relay's published_at is its own bookkeeping), not a drive, not the library's
// files nor anything beside them. The fixtures make every drive change impossible while every rule
// is still checked in the order the service checks them (see each target).

// fzState is a digest of media-service's tables, of the VMs' definitions and of the files in and
// beside the library.
func (s *stack) fzState(t testing.TB, vms ...string) string {
	t.Helper()
	var db string
	err := s.Pool.QueryRow(context.Background(), `SELECT concat_ws('/',
		(SELECT md5(coalesce(string_agg(c::text, '|' ORDER BY c.id), '')) FROM media_changes c),
		(SELECT md5(coalesce(string_agg(concat_ws(',', o.id, o.topic, o.key, encode(o.payload, 'hex'), o.traceparent, o.created_at), '|' ORDER BY o.id), '')) FROM outbox o),
		(SELECT count(*) FROM media_claims))`).Scan(&db)
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{db}
	for _, vm := range vms {
		dom, err := s.lv.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
		if err != nil {
			t.Fatal(err)
		}
		desc, err := s.lv.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, desc)
	}
	for _, dir := range []string{s.isoDir, filepath.Dir(s.isoDir)} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile: the listing differs anyway
			}
			size := info.Size()
			if info.IsDir() {
				size = 0
			}
			parts = append(parts, fmt.Sprintf("%s:%s:%v:%d", dir, e.Name(), info.Mode(), size))
		}
	}
	return strings.Join(parts, "\n")
}

type fzAnswer struct {
	status int
	body   map[string]any
	raw    string
}

// fzDo writes one request to the service over TCP, target exactly as given, and reads its answer.
func (s *stack) fzDo(t testing.TB, method, target, token, contentType, body string) fzAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.server, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: media\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, len(body))
	if contentType != "" {
		req += "Content-Type: " + contentType + "\r\n"
	}
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %q: no HTTP answer: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := fzAnswer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// fzCheck is the common rule for an answer and the states around it.
func fzCheck(t *testing.T, what string, a fzAnswer, before, after string) {
	t.Helper()
	if a.status >= 500 {
		t.Fatalf("%s: %d %s", what, a.status, a.raw)
	}
	if a.status >= 400 && (a.body["code"] != float64(a.status) || a.body["message"] == "") {
		t.Fatalf("%s: %d without the {code, message} error body: %s", what, a.status, a.raw)
	}
	if after != before {
		t.Fatalf("%s: %d %s, and something changed:\n%s\n---\n%s", what, a.status, a.raw, before, after)
	}
}

// fzNotOnRequestLine is what a request target cannot contain: it would end the target or the line.
func fzNotOnRequestLine(r rune) bool { return r <= ' ' || r == 0x7f }

// fzPlaceholders replaces the seeds' names of fixture values ($bare, $dir, ...) with the values.
func fzPlaceholders(s string, values map[string]string) string {
	for k, v := range values {
		s = strings.ReplaceAll(s, "$"+k, v)
	}
	return s
}

// FuzzChangeMedia: GET and POST /api/vms/{ref}/media (op % 2) with a fuzzed ref and attach/eject body,
// as user 1. Fixture: an ISO in the library; user 1's VM without a CD-ROM drive ("bare": every
// attach or eject that decodes, validates, finds the VM and resolves the ISO inside the library is
// refused 409 when it reaches the drive, after claiming it, which it must give back); user 2's VM
// with a drive (not user 1's: 404). So no POST can pass and nothing changes. Seeds:
// testdata/fuzz/FuzzChangeMedia ($bare, $other, $iso, $dir name the fixture's values).
func FuzzChangeMedia(f *testing.F) {
	s := newStack(f)
	iso := s.makeISO("ubuntu.iso")
	values := map[string]string{"bare": s.defineVM(1, false, false), "other": s.defineVM(2, false, true), "iso": iso, "dir": s.isoDir}
	vms := []string{values["bare"], values["other"]}
	f.Fuzz(func(t *testing.T, op uint8, ref, body string) {
		ref, body = fzPlaceholders(ref, values), fzPlaceholders(body, values)
		if strings.ContainsFunc(ref, fzNotOnRequestLine) {
			return // no request line carries it
		}
		method, contentType := "GET", ""
		if op%2 == 1 {
			method, contentType = "POST", "application/json"
		} else {
			body = ""
		}
		before := s.fzState(t, vms...)
		a := s.fzDo(t, method, "/api/vms/"+ref+"/media", s.Keys.Token(t, 1, "user"), contentType, body)
		after := s.fzState(t, vms...)
		what := method + " /api/vms/" + ref + "/media " + body
		fzCheck(t, what, a, before, after)
		if method == "POST" && a.status < 400 {
			t.Fatalf("%s: %d %s, but no drive change can pass", what, a.status, a.raw)
		}
	})
}

// FuzzISOName: the ISO name of the admin's DELETE /api/vms/isos/{name} (op % 3 == 0; as a plain user:
// 1) and of the upload POST /api/vms/isos?name= (2; the raw query, with a 4-byte body). Fixture: the
// library holds ubuntu.iso, attached to a VM (so deleting it is refused 409), a file that is no ISO
// and escape.iso, a link to an ISO outside the library. A delete never passes and changes nothing.
// An upload may pass: then exactly one regular file, named as answered, appears directly in the
// library with the bytes sent, and deleting it through the API restores everything; else nothing
// changes. Seeds: testdata/fuzz/FuzzISOName.
func FuzzISOName(f *testing.F) {
	s := newStack(f)
	iso := s.makeISO("ubuntu.iso")
	holder := s.defineVM(1, false, true)
	s.expect(s.call("POST", "/api/vms/"+holder+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": iso}), 200, "")
	outside := filepath.Join(filepath.Dir(s.isoDir), "outside-"+filepath.Base(s.isoDir)+".iso")
	if err := os.WriteFile(outside, []byte("not in the library"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = os.Remove(outside) })
	if err := os.Symlink(outside, filepath.Join(s.isoDir, "escape.iso")); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.isoDir, "notes.txt"), []byte("x"), 0o644); err != nil {
		f.Fatal(err)
	}
	const content = "LIMN"
	f.Fuzz(func(t *testing.T, op uint8, name string) {
		if strings.ContainsFunc(name, fzNotOnRequestLine) {
			return // no request line carries it
		}
		admin := s.Keys.Token(t, 9, "admin")
		before := s.fzState(t, holder)
		var a fzAnswer
		var what string
		switch op % 3 {
		case 0, 1:
			token := admin
			if op%3 == 1 {
				token = s.Keys.Token(t, 1, "user")
			}
			what = "DELETE /api/vms/isos/" + name
			a = s.fzDo(t, "DELETE", "/api/vms/isos/"+name, token, "", "")
			if a.status < 400 {
				t.Fatalf("%s: %d %s, but no deletion can pass", what, a.status, a.raw)
			}
		default:
			what = "POST /api/vms/isos?name=" + name
			a = s.fzDo(t, "POST", "/api/vms/isos?name="+name, admin, "application/octet-stream", content)
			if a.status == http.StatusCreated {
				fzCheckUploaded(t, s, what, a, content)
				del := s.fzDo(t, "DELETE", "/api/vms/isos/"+fzPathEscapeName(a), admin, "", "")
				if del.status != http.StatusOK {
					t.Fatalf("%s: 201 %s, then its deletion answered %d %s", what, a.raw, del.status, del.raw)
				}
				a = fzAnswer{status: http.StatusOK} // judged below as a whole: back to where it was
			}
		}
		after := s.fzState(t, holder)
		if !strings.Contains(after, "outside") || func() bool { b, err := os.ReadFile(outside); return err != nil || string(b) != "not in the library" }() {
			t.Fatalf("%s: %d %s changed the file outside the library", what, a.status, a.raw)
		}
		fzCheck(t, what, a, before, after)
	})
}

// fzCheckUploaded checks a 201 upload: one new regular file directly in the library, named as the
// answer says, holding the bytes sent.
func fzCheckUploaded(t *testing.T, s *stack, what string, a fzAnswer, content string) {
	t.Helper()
	iso, _ := a.body["iso"].(map[string]any)
	name, _ := iso["name"].(string)
	path, _ := iso["path"].(string)
	if name == "" || strings.ContainsAny(name, "/\x00") || path != filepath.Join(s.isoDir, name) {
		t.Fatalf("%s: 201 %s names no file directly in %s", what, a.raw, s.isoDir)
	}
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		t.Fatalf("%s: 201 %s, but %s is no regular file (%v)", what, a.raw, path, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != content {
		t.Fatalf("%s: 201 %s, but %s holds %q (%v)", what, a.raw, path, b, err)
	}
	entries, _ := os.ReadDir(s.isoDir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, name) {
		t.Fatalf("%s: 201 %s, but the library lists %v", what, a.raw, names)
	}
}

// fzPathEscapeName is the uploaded ISO's name as a path segment (names may hold spaces and '+').
func fzPathEscapeName(a fzAnswer) string {
	iso, _ := a.body["iso"].(map[string]any)
	name, _ := iso["name"].(string)
	return strings.ReplaceAll(name, " ", "%20")
}
