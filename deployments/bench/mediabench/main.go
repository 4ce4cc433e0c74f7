// Command mediabench measures media-service on a running stack: attach/eject through the gateway
// against raw go-libvirt DomainUpdateDeviceFlags on the same guest, back-to-back swaps, and the
// memory of the gateway and media-service during a large ISO upload. deployments/bench/media.sh
// starts the stack and runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/testkit/memtest"
)

func main() {
	gateway := flag.String("gateway", "", "gateway base URL")
	token := flag.String("token", "", "an admin's access token")
	vm := flag.String("vm", "", "uuid of a running VM")
	isos := flag.String("isos", "", "two ISO paths of the library, comma-separated")
	socket := flag.String("socket", "/var/run/libvirt/libvirt-sock", "libvirtd socket")
	n := flag.Int("n", 100, "swaps per measurement")
	uploadBytes := flag.Int64("upload", 1<<30, "bytes of the upload (0: none)")
	pids := flag.String("pids", "", "processes to watch during the upload, name=pid,...")
	flag.Parse()
	images := strings.Split(*isos, ",")
	if len(images) != 2 {
		fail("need two ISOs")
	}
	c := client{base: *gateway, token: *token}

	raw := newRawDrive(*socket, uuid.MustParse(*vm))
	defer raw.close()
	attach, rawAttach, eject, failures := c.swaps(*vm, images, *n, raw)
	fmt.Printf("through the gateway: %d attaches and %d ejects back to back, %d failures\n", *n, *n, failures)
	fmt.Printf("  attach median %s, eject median %s\n", attach, eject)
	fmt.Printf("raw DomainUpdateDeviceFlags (live|config), interleaved with those: median %s\n", rawAttach)
	fmt.Printf("attach through the gateway / raw: %.2fx\n", float64(attach)/float64(rawAttach))

	if *uploadBytes > 0 {
		c.upload(*uploadBytes, *pids)
	}
}

// settle is the pause before each measured attach.
const settle = 100 * time.Millisecond

type client struct{ base, token string }

func (c client) do(method, path string, body io.Reader, size int64, contentType string) (int, []byte) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		fail(err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (c client) media(vm string, body map[string]string) (time.Duration, bool) {
	b, _ := json.Marshal(body)
	start := time.Now()
	status, out := c.do("POST", "/api/vms/"+vm+"/media", bytes.NewReader(b), int64(len(b)), "application/json")
	took := time.Since(start)
	if status != http.StatusOK {
		fmt.Fprintf(os.Stderr, "%v: %d %s\n", body, status, out)
		return took, false
	}
	return took, true
}

// swaps attaches the two images alternately, then ejects as often. Each attach through the gateway is
// paired with a raw change on the same guest, in alternating order and after the same pause, so both
// see the same conditions: QEMU's media change time drifts by tens of percent over a run and depends
// on how recently the tray last moved.
func (c client) swaps(vm string, images []string, n int, raw *rawDrive) (attach, rawAttach, eject time.Duration, failures int) {
	var attaches, raws, ejects []time.Duration
	for i := range n {
		viaGateway := func() {
			time.Sleep(settle)
			took, ok := c.media(vm, map[string]string{"action": "attach", "iso_path": images[i%2]})
			attaches = append(attaches, took)
			if !ok {
				failures++
			}
		}
		bare := func() {
			time.Sleep(settle)
			raws = append(raws, raw.change(images[(i+1)%2]))
		}
		if i%2 == 0 {
			viaGateway()
			bare()
		} else {
			bare()
			viaGateway()
		}
	}
	for range n {
		took, ok := c.media(vm, map[string]string{"action": "detach"})
		ejects = append(ejects, took)
		if !ok {
			failures++
		}
	}
	return median(attaches), median(raws), median(ejects), failures
}

// rawDrive changes the guest's CD-ROM with bare libvirt calls: the floor the service is compared with.
type rawDrive struct {
	l   *libvirt.Libvirt
	dom libvirt.Domain
}

func newRawDrive(socket string, vm uuid.UUID) *rawDrive {
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket)))
	if err := l.ConnectToURI(libvirt.QEMUSystem); err != nil {
		fail(err)
	}
	dom, err := l.DomainLookupByUUID(libvirt.UUID(vm))
	if err != nil {
		fail(err)
	}
	return &rawDrive{l: l, dom: dom}
}

func (r *rawDrive) change(path string) time.Duration {
	def, _ := (&libvirtxml.DomainDisk{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
		Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: path}},
		Target:   &libvirtxml.DomainDiskTarget{Dev: "sda", Bus: "sata"},
		ReadOnly: &libvirtxml.DomainDiskReadOnly{}}).Marshal()
	start := time.Now()
	if err := r.l.DomainUpdateDeviceFlags(r.dom, def, libvirt.DomainDeviceModifyLive|libvirt.DomainDeviceModifyConfig); err != nil {
		fail(err)
	}
	return time.Since(start)
}

func (r *rawDrive) close() { _ = r.l.Disconnect() }

// upload streams size bytes as an ISO through the gateway while sampling the watched processes' RSS.
func (c client) upload(size int64, pids string) {
	watched := map[string]int{}
	for _, kv := range strings.Split(pids, ",") {
		if name, pid, ok := strings.Cut(kv, "="); ok {
			watched[name], _ = strconv.Atoi(pid)
		}
	}
	type rss struct{ start, peak int64 }
	var mu sync.Mutex
	seen := map[string]*rss{}
	for name, pid := range watched {
		r := rssOf(pid)
		seen[name] = &rss{start: r, peak: r}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			mu.Lock()
			for name, pid := range watched {
				seen[name].peak = max(seen[name].peak, rssOf(pid))
			}
			mu.Unlock()
		}
	}()
	start := time.Now()
	status, out := c.do("POST", "/api/vms/isos?name=mediabench-upload.iso", memtest.Pattern(size), size, "application/octet-stream")
	took := time.Since(start)
	close(stop)
	<-done
	if status != http.StatusCreated {
		fail(fmt.Sprintf("upload: %d %s", status, out))
	}
	fmt.Printf("upload of %d MiB through the gateway: %s (%.0f MiB/s)\n", size>>20, took.Round(time.Millisecond), float64(size>>20)/took.Seconds())
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Printf("  %s RSS: %d MiB before, %d MiB peak\n", name, seen[name].start>>10, seen[name].peak>>10)
	}
	if status, out := c.do("DELETE", "/api/vms/isos/mediabench-upload.iso", nil, 0, ""); status != http.StatusOK {
		fail(fmt.Sprintf("delete: %d %s", status, out))
	}
}

// rssOf is a process's resident set in KiB.
func rssOf(pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func fail(v any) {
	fmt.Fprintln(os.Stderr, "mediabench:", v)
	os.Exit(1)
}
