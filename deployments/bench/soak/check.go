package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/twmb/franz-go/pkg/kgo"
	"libvirt.org/go/libvirtxml"
)

// checker runs the final checks once everything has settled and collects mismatches by category.
type checker struct {
	s          *stack
	api        *api
	adminToken string
	users      []*user
	logf       func(string, ...any)

	mismatches map[string][]string
	notes      []string
	vmEvents   map[string]map[int64]event // by VM uuid and seq, from limen.vm.events
}

func (c *checker) add(category, format string, args ...any) {
	c.mismatches[category] = append(c.mismatches[category], fmt.Sprintf(format, args...))
}

func (c *checker) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

func (c *checker) count() int {
	n := 0
	for _, m := range c.mismatches {
		n += len(m)
	}
	return n
}

// run does every check; each converging one polls up to within before it reports.
func (c *checker) run(within time.Duration) {
	c.mismatches = map[string][]string{}
	c.checkIdle(within)
	c.checkLibvirt(within)
	c.readEvents()
	c.checkLedgers()
	c.checkSockets(within)
	c.checkEvents()
}

// listAll is every VM as the admin's GET /api/vms?all=true shows it, by uuid.
func (c *checker) listAll() (map[string]map[string]any, error) {
	r := c.api.do("GET", "/api/vms?all=true", c.adminToken, nil)
	if r.status != http.StatusOK {
		return nil, fmt.Errorf("GET /api/vms?all=true: %s", r)
	}
	out := map[string]map[string]any{}
	for _, v := range r.list {
		vm, _ := v.(map[string]any)
		uuid := fmt.Sprint(vm["uuid"])
		if _, dup := out[uuid]; dup {
			c.add("VM listed twice", "VM %s appears twice in GET /api/vms?all=true", uuid)
		}
		out[uuid] = vm
	}
	return out, nil
}

// retryList lists, trying for a while: a check must not fail on one lost request.
func (c *checker) retryList() map[string]map[string]any {
	var err error
	for range 30 {
		var vms map[string]map[string]any
		if vms, err = c.listAll(); err == nil {
			return vms
		}
		time.Sleep(time.Second)
	}
	c.add("API unavailable at the end", "%v", err)
	return map[string]map[string]any{}
}

func describeVM(vm map[string]any) string {
	s := fmt.Sprintf("%v (%v, owner %v): %v", vm["uuid"], vm["name"], vm["owner_id"], vm["status"])
	if t, _ := vm["task"].(map[string]any); t != nil {
		s += fmt.Sprintf(", task %v", t["action"])
	}
	if r, _ := vm["status_reason"].(string); r != "" {
		s += " (" + r + ")"
	}
	return s
}

// checkIdle: once the load has stopped, no VM keeps a task. One that does holds an action whose end
// was never recorded: it refuses every action (409 busy) and its status is not resynced until the
// task goes stale.
func (c *checker) checkIdle(within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		busy := map[string]map[string]any{}
		for uuid, vm := range c.retryList() {
			if vm["task"] != nil {
				busy[uuid] = vm
			}
		}
		if len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, uuid := range sortedKeys(busy) {
				c.add("VM stuck busy (task never ended)", "%s, updated_at %v", describeVM(busy[uuid]), busy[uuid]["updated_at"])
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// domainInfo is what libvirt says of one LIMEN domain.
type domainInfo struct {
	status      string
	cpu, memory int    // persistent definition (MiB)
	cdromLive   string // the CD-ROM's source, live (the definition when not running)
	cdromConfig string // ... in the persistent definition
}

var statusOfState = map[libvirt.DomainState]string{
	libvirt.DomainRunning: "Running", libvirt.DomainBlocked: "Running", libvirt.DomainShutdown: "Running",
	libvirt.DomainPaused: "Paused", libvirt.DomainPmsuspended: "Paused", libvirt.DomainShutoff: "Stopped",
}

func (c *checker) domains(l *libvirt.Libvirt) (map[string]domainInfo, error) {
	doms, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]domainInfo{}
	for _, dom := range doms {
		uuid, ok := strings.CutPrefix(dom.Name, "limen-")
		if !ok {
			continue
		}
		var info domainInfo
		state, _, err := l.DomainGetState(dom, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dom.Name, err)
		}
		if info.status = statusOfState[libvirt.DomainState(state)]; info.status == "" {
			info.status = fmt.Sprintf("Error (libvirt state %d)", state)
		}
		for _, flags := range []libvirt.DomainXMLFlags{0, libvirt.DomainXMLInactive} {
			raw, err := l.DomainGetXMLDesc(dom, flags)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", dom.Name, err)
			}
			var d libvirtxml.Domain
			if err := d.Unmarshal(raw); err != nil {
				return nil, err
			}
			cdrom := ""
			if d.Devices != nil {
				for _, disk := range d.Devices.Disks {
					if disk.Device == "cdrom" && disk.Source != nil && disk.Source.File != nil {
						cdrom = disk.Source.File.File
					}
				}
			}
			if flags == 0 {
				info.cdromLive = cdrom
				continue
			}
			info.cdromConfig = cdrom
			if d.VCPU != nil {
				info.cpu = int(d.VCPU.Value)
			}
			if d.Memory != nil {
				info.memory = int(toMiB(d.Memory.Value, d.Memory.Unit))
			}
		}
		out[uuid] = info
	}
	return out, nil
}

func toMiB(v uint, unit string) uint {
	switch strings.ToLower(unit) {
	case "", "k", "kib":
		return v / 1024
	case "m", "mib":
		return v
	case "g", "gib":
		return v * 1024
	case "b", "bytes":
		return v >> 20
	}
	return v
}

// checkLibvirt: every VM in the database has its domain limen-<uuid> in the listed state and size,
// with its disk in the pool, and its drive as the API shows it; no LIMEN domain or disk is without
// a VM. It polls until that holds or within has passed (the resync repairs statuses, and removes
// domains a crash left behind once LIMEN_ORPHAN_GRACE has passed).
func (c *checker) checkLibvirt(within time.Duration) {
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(c.s.libvirtd.SocketPath())))
	if err := l.ConnectToURI(libvirt.ConnectURI(c.s.libvirtd.URI())); err != nil {
		c.add("libvirt unavailable at the end", "%v", err)
		return
	}
	defer func() { _ = l.Disconnect() }()
	deadline := time.Now().Add(within)
	for {
		problems := map[string][]string{}
		add := func(cat, format string, args ...any) {
			problems[cat] = append(problems[cat], fmt.Sprintf(format, args...))
		}
		vms := c.retryList()
		doms, err := c.domains(l)
		if err != nil {
			add("libvirt unavailable at the end", "%v", err)
		}
		for _, uuid := range sortedKeys(vms) {
			vm := vms[uuid]
			dom, ok := doms[uuid]
			if !ok {
				add("VM without a domain", "%s", describeVM(vm))
				continue
			}
			if dom.status != vm["status"] {
				add("status differs from libvirt", "%s; libvirt: %s", describeVM(vm), dom.status)
			}
			if float64(dom.cpu) != vm["cpu"] || float64(dom.memory) != vm["memory"] {
				add("size differs from libvirt", "%s: API %v vCPU %v MiB; libvirt definition %d vCPU %d MiB",
					vm["uuid"], vm["cpu"], vm["memory"], dom.cpu, dom.memory)
			}
			if _, err := os.Stat(filepath.Join(c.s.poolDir, uuid+".qcow2")); err != nil {
				add("VM without a disk", "%s: %v", describeVM(vm), err)
			}
			media := c.api.do("GET", "/api/vms/"+uuid+"/media", c.adminToken, nil)
			if media.status != http.StatusOK {
				add("media unreadable", "GET /api/vms/%s/media: %s", uuid, media)
				continue
			}
			path, _ := media.obj["media_path"].(string)
			attached, _ := media.obj["attached"].(bool)
			if attached != (path != "") || path != dom.cdromLive {
				add("media differs from libvirt", "%s: API attached=%v %q; libvirt CD-ROM %q", uuid, attached, path, dom.cdromLive)
			}
			if dom.cdromConfig != dom.cdromLive {
				add("media differs from libvirt", "%s: live CD-ROM %q, persistent definition %q", uuid, dom.cdromLive, dom.cdromConfig)
			}
		}
		for _, uuid := range sortedKeys(doms) {
			if _, ok := vms[uuid]; !ok {
				add("orphan domain (no VM)", "limen-%s (%s)", uuid, doms[uuid].status)
			}
		}
		disks, _ := filepath.Glob(filepath.Join(c.s.poolDir, "*"))
		for _, disk := range disks {
			if _, ok := vms[strings.TrimSuffix(filepath.Base(disk), ".qcow2")]; !ok {
				add("orphan disk (no VM)", "%s", disk)
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			for cat, list := range problems {
				c.mismatches[cat] = append(c.mismatches[cat], list...)
			}
			c.note("libvirt: %d domains, %d VMs in the database", len(doms), len(vms))
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// userList is the user's own VMs as GET /api/vms shows them.
func (c *checker) userList(u *user) (map[string]map[string]any, error) {
	var r reply
	for range 30 {
		if r = c.api.do("GET", "/api/vms", u.tok(), nil); r.status == http.StatusOK {
			out := map[string]map[string]any{}
			for _, v := range r.list {
				vm, _ := v.(map[string]any)
				out[fmt.Sprint(vm["uuid"])] = vm
			}
			return out, nil
		}
		if r.status == http.StatusUnauthorized {
			u.login(context.Background())
		}
		time.Sleep(time.Second)
	}
	return nil, fmt.Errorf("%s: GET /api/vms: %s", u.name, r)
}

// checkLedgers: what each client was told matches the database: every VM whose create answered 201
// and that its owner did not delete exists (once); every VM whose delete answered 200 is gone.
func (c *checker) checkLedgers() {
	for _, u := range c.users {
		listed, err := c.userList(u)
		if err != nil {
			c.add("API unavailable at the end", "%v", err)
			continue
		}
		u.mu.Lock()
		for uuid, vm := range u.vms {
			// A delete that got no definite answer (a 503 during a fault) may have been finished by
			// the service's own retry: gone is as right as present.
			if _, unsure := u.unsure[uuid]; unsure {
				continue
			}
			if _, ok := listed[uuid]; !ok {
				c.add("VM lost (created, never deleted, gone)", "%s: VM %s (%s)", u.name, uuid, vm.name)
			}
		}
		for uuid := range u.deleted {
			if vm, ok := listed[uuid]; ok {
				c.add("VM deleted (200) but still there", "%s: %s", u.name, describeVM(vm))
			}
		}
		for uuid := range u.vanished {
			if vm, ok := listed[uuid]; ok {
				c.add("VM answered 404, then reappeared", "%s: %s", u.name, describeVM(vm))
			} else {
				c.add("VM lost (created, never deleted, gone)", "%s: VM %s answered 404 while its owner never deleted it", u.name, uuid)
			}
		}
		pending := map[string]bool{}
		for _, name := range u.pendingNames {
			pending[name] = true
		}
		for uuid, vm := range listed {
			_, known := u.vms[uuid]
			_, unsure := u.unsure[uuid]
			switch {
			case known, unsure, u.deleted[uuid], u.vanished[uuid]:
			case pending[fmt.Sprint(vm["name"])]:
				c.note("%s: VM %s (%v) exists from a create whose answer never came", u.name, uuid, vm["name"])
			default:
				c.add("VM its owner never created", "%s: %s", u.name, describeVM(vm))
			}
		}
		for uuid, why := range u.unsure {
			_, exists := listed[uuid]
			c.note("%s: VM %s: %s; it exists: %v", u.name, uuid, why, exists)
		}
		u.mu.Unlock()
	}
}

// checkSockets: each client's live view, built from what its socket sent, matches GET /api/vms for
// that user (and its drives GET .../media); no stream went backwards or skipped a number.
func (c *checker) checkSockets(within time.Duration) {
	fields := []string{"name", "cpu", "memory", "status", "owner_id"}
	for _, u := range c.users {
		w := u.ws
		deadline := time.Now().Add(within)
		var diffs []string
		var since time.Time
		for {
			diffs = nil
			var view map[string]map[string]any
			var media map[string]mediaView
			view, media, since = w.snapshot()
			listed, err := c.userList(u)
			switch {
			case err != nil:
				diffs = append(diffs, err.Error())
			case view == nil:
				diffs = append(diffs, "the socket is not open (or sent no vm_list)")
			default:
				for uuid, vm := range listed {
					got, ok := view[uuid]
					if !ok {
						diffs = append(diffs, fmt.Sprintf("%s missing from the socket's view", describeVM(vm)))
						continue
					}
					for _, f := range fields {
						if fmt.Sprint(got[f]) != fmt.Sprint(vm[f]) {
							diffs = append(diffs, fmt.Sprintf("%s: %s is %v on the socket, %v in GET /api/vms", uuid, f, got[f], vm[f]))
						}
					}
				}
				for uuid, vm := range view {
					if _, ok := listed[uuid]; !ok {
						diffs = append(diffs, fmt.Sprintf("%s on the socket but not in GET /api/vms", describeVM(vm)))
					}
				}
				for uuid, m := range media {
					if _, ok := listed[uuid]; !ok {
						continue
					}
					r := c.api.do("GET", "/api/vms/"+uuid+"/media", u.tok(), nil)
					path, _ := r.obj["media_path"].(string)
					attached, _ := r.obj["attached"].(bool)
					if r.status == http.StatusOK && (path != m.path || attached != m.attached) {
						diffs = append(diffs, fmt.Sprintf("%s: drive on the socket %q attached=%v, GET media %q attached=%v",
							uuid, m.path, m.attached, path, attached))
					}
				}
			}
			if len(diffs) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		for _, d := range diffs {
			c.add("live view differs from GET /api/vms", "%s (socket open since %s): %s", u.name, since.Format("15:04:05"), d)
		}
		w.mu.Lock()
		for _, p := range w.disorder {
			c.add("event applied out of order", "%s, connection %d at %s: VM %s %s seq %d after %d",
				u.name, p.connection, p.at.Format("15:04:05.000"), p.uuid, streamName(p.media), p.seq, p.prev)
		}
		for _, p := range w.gaps {
			c.add("event lost on the socket", "%s, connection %d at %s: VM %s seq %d after %d (%s)",
				u.name, p.connection, p.at.Format("15:04:05.000"), p.uuid, p.seq, p.prev, c.onTopic(p.uuid, p.prev+1, p.seq-1))
		}
		w.mu.Unlock()
	}
}

func streamName(media bool) string {
	if media {
		return "drive"
	}
	return "VM"
}

// onTopic says whether limen.vm.events holds a VM's events from..to.
func (c *checker) onTopic(uuid string, from, to int64) string {
	var missing []string
	for seq := from; seq <= to; seq++ {
		if _, ok := c.vmEvents[uuid][seq]; !ok {
			missing = append(missing, strconv.FormatInt(seq, 10))
		}
	}
	if len(missing) == 0 {
		return "they are on limen.vm.events: the gateway did not pass them on"
	}
	return "not on limen.vm.events either: " + strings.Join(missing, ", ")
}

// event is what the checks read of a CloudEvent on the broker.
type event struct {
	Type     string          `json:"type"`
	Subject  string          `json:"subject"`
	Sequence json.RawMessage `json:"sequence"`
	Data     map[string]any  `json:"data"`
	seq      int64
}

// readTopic reads a topic from its start to its end (until three polls in a row bring nothing).
func (c *checker) readTopic(topic string) (map[string]map[int64]event, int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.s.kafka), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	out := map[string]map[int64]event{}
	conflicts, empty := 0, 0
	for empty < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fetches := cl.PollFetches(ctx)
		cancel()
		if fetches.NumRecords() == 0 {
			empty++
			continue
		}
		empty = 0
		fetches.EachRecord(func(r *kgo.Record) {
			var e event
			if json.Unmarshal(r.Value, &e) != nil {
				return
			}
			seq, err := strconv.ParseInt(strings.Trim(string(e.Sequence), `"`), 10, 64)
			if err != nil {
				c.add("event without a sequence", "%s: %s", topic, r.Value)
				return
			}
			e.seq = seq
			if out[e.Subject] == nil {
				out[e.Subject] = map[int64]event{}
			}
			if prev, ok := out[e.Subject][seq]; ok && fmt.Sprint(prev.Type, prev.Data) != fmt.Sprint(e.Type, e.Data) {
				conflicts++
				c.add("two different events with one sequence", "%s: %s seq %d: %s %v / %s %v", topic, e.Subject, seq,
					prev.Type, prev.Data, e.Type, e.Data)
			}
			out[e.Subject][seq] = e
		})
	}
	return out, conflicts, nil
}

func (c *checker) readEvents() {
	var err error
	if c.vmEvents, _, err = c.readTopic("limen.vm.events"); err != nil {
		c.add("broker unavailable at the end", "%v", err)
	}
}

// checkEvents: limen.vm.events holds each VM's events numbered 1, 2, 3, ... without a gap, the last
// one the state the API shows (or the deletion, for a VM that is gone); limen.media.events' last
// event of each VM is its drive as the API shows it.
func (c *checker) checkEvents() {
	vms := c.retryList()
	for _, uuid := range sortedKeys(c.vmEvents) {
		byseq := c.vmEvents[uuid]
		var last int64
		for seq := range byseq {
			last = max(last, seq)
		}
		var missing []string
		for seq := int64(1); seq <= last; seq++ {
			if _, ok := byseq[seq]; !ok {
				missing = append(missing, strconv.FormatInt(seq, 10))
			}
		}
		if len(missing) > 0 {
			c.add("event missing on limen.vm.events", "VM %s: seq %s of 1..%d", uuid, strings.Join(missing, ", "), last)
		}
		e := byseq[last]
		vm, exists := vms[uuid]
		switch {
		case !exists && e.Type != "limen.vm.deleted":
			c.add("VM gone without its deletion published", "VM %s: last event %d is %s (%v)", uuid, last, e.Type, e.Data["status"])
		case exists && e.Type == "limen.vm.deleted":
			c.add("VM deleted on the topic but still there", "%s", describeVM(vm))
		case exists:
			for _, f := range []string{"name", "cpu", "memory", "status"} {
				if fmt.Sprint(e.Data[f]) != fmt.Sprint(vm[f]) {
					c.add("last event differs from the API", "VM %s: event %d has %s=%v, the API %v", uuid, last, f, e.Data[f], vm[f])
				}
			}
		}
	}
	for _, uuid := range sortedKeys(vms) {
		if _, ok := c.vmEvents[uuid]; !ok {
			c.add("VM without events", "%s", describeVM(vms[uuid]))
		}
	}
	media, _, err := c.readTopic("limen.media.events")
	if err != nil {
		c.add("broker unavailable at the end", "%v", err)
		return
	}
	for _, uuid := range sortedKeys(vms) {
		r := c.api.do("GET", "/api/vms/"+uuid+"/media", c.adminToken, nil)
		if r.status != http.StatusOK {
			continue
		}
		path, _ := r.obj["media_path"].(string)
		attached, _ := r.obj["attached"].(bool)
		var last int64
		for seq := range media[uuid] {
			last = max(last, seq)
		}
		if last == 0 {
			if attached {
				c.add("drive change not published", "VM %s: %q attached, no event on limen.media.events", uuid, path)
			}
			continue
		}
		e := media[uuid][last]
		if fmt.Sprint(e.Data["media_path"]) != path || e.Data["attached"] != attached {
			c.add("drive change not published", "VM %s: last media event %d says %v %v, the API %q attached=%v",
				uuid, last, e.Data["media_path"], e.Data["attached"], path, attached)
		}
	}
	c.note("limen.vm.events: events of %d VMs; limen.media.events: %d VMs", len(c.vmEvents), len(media))
}

func (c *checker) print(w io.Writer) {
	fmt.Fprintf(w, "mismatches: %d\n", c.count())
	cats := sortedKeys(c.mismatches)
	sort.Strings(cats)
	for _, cat := range cats {
		fmt.Fprintf(w, "  %s: %d\n", cat, len(c.mismatches[cat]))
		for i, m := range c.mismatches[cat] {
			if i == 15 {
				fmt.Fprintf(w, "      ... %d more\n", len(c.mismatches[cat])-i)
				break
			}
			fmt.Fprintf(w, "      %s\n", m)
		}
	}
	if len(c.notes) > 0 {
		fmt.Fprintln(w, "notes:")
		for _, n := range c.notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}
