package service_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/testkit/testguest"
	"limen/vm-service/internal/service"
)

// BenchmarkSnapshot_RunningGuest_ServiceVsRawLibvirt takes and restores snapshots of a running
// 256 MiB test guest through vm-service's HTTP port and with bare libvirt calls on the same domain,
// paired and interleaved (which goes first alternates), and reports each median and the service's
// ratio to libvirt. During each restore another VM is read and resized without pause: its slowest
// answer during the service's restores, against its slowest during libvirt's own (the machine's load
// alone) and its median when nothing else runs, is what a restore makes other VMs wait.
func BenchmarkSnapshot_RunningGuest_ServiceVsRawLibvirt(b *testing.B) {
	s := newStack(b, func(c *service.Config) { c.ResyncInterval = 30 * time.Second }) // the default, not the tests' 1 s
	alice := s.token(1, "user")
	vm, _ := s.bootGuest(alice, "bench", 256, testguest.Options{})
	bystander := s.create(alice, "bystander")
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		b.Fatal(err)
	}
	// touch reads the bystander and resizes it (alternating between 1 and 2 vCPUs): a row read, and an
	// action through the same libvirt connection.
	cpu := 1
	touch := func() time.Duration {
		start := time.Now()
		s.get(alice, bystander.UUID)
		cpu = 3 - cpu
		if code, _, msg := s.action(alice, bystander.UUID, fmt.Sprintf(`{"action":"update","cpu":%d}`, cpu)); code != http.StatusOK {
			b.Fatalf("bystander: %d %s", code, msg)
		}
		return time.Since(start)
	}
	var idle []time.Duration
	for range 20 {
		idle = append(idle, touch())
	}
	// during runs touch without pause while restore runs, and answers touch's slowest time.
	during := func(restore func()) time.Duration {
		stop := make(chan struct{})
		var slowest time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					slowest = max(slowest, touch())
				}
			}
		}()
		restore()
		close(stop)
		wg.Wait()
		return slowest
	}

	var svcCreate, rawCreate, svcRestore, rawRestore, blocked, loaded []time.Duration
	timed := func(into *[]time.Duration, f func()) {
		start := time.Now()
		f()
		*into = append(*into, time.Since(start))
	}
	for i := 0; b.Loop(); i++ {
		var snap snapshotJSON
		var raw golibvirt.DomainSnapshot
		service := func() { snap = s.snapshot(alice, vm.UUID, fmt.Sprintf(`{"name":"svc-%d"}`, i)) }
		libvirt := func() {
			if raw, err = l.DomainSnapshotCreateXML(dom, fmt.Sprintf(`<domainsnapshot><name>raw-%d</name></domainsnapshot>`, i), 0); err != nil {
				b.Fatal(err)
			}
		}
		restoreService := func() {
			blocked = append(blocked, during(func() { done(b, s.restore(alice, snap.ID), "restored", snap.ID) }))
		}
		restoreLibvirt := func() {
			loaded = append(loaded, during(func() {
				if err := l.DomainRevertToSnapshot(raw, 0); err != nil {
					b.Fatal(err)
				}
			}))
		}
		if i%2 == 0 {
			timed(&svcCreate, service)
			timed(&rawCreate, libvirt)
			timed(&svcRestore, restoreService)
			timed(&rawRestore, restoreLibvirt)
		} else {
			timed(&rawCreate, libvirt)
			timed(&svcCreate, service)
			timed(&rawRestore, restoreLibvirt)
			timed(&svcRestore, restoreService)
		}
		b.StopTimer()
		done(b, s.deleteSnapshot(alice, snap.ID), "deleted", snap.ID)
		if err := l.DomainSnapshotDelete(raw, 0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(svcCreate)), "svc-create-ms")
	b.ReportMetric(ms(median(rawCreate)), "raw-create-ms")
	b.ReportMetric(float64(median(svcCreate))/float64(median(rawCreate)), "create-ratio")
	b.ReportMetric(ms(median(svcRestore)), "svc-restore-ms")
	b.ReportMetric(ms(median(rawRestore)), "raw-restore-ms")
	b.ReportMetric(float64(median(svcRestore))/float64(median(rawRestore)), "restore-ratio")
	b.ReportMetric(ms(median(idle)), "other-vm-idle-ms")
	b.ReportMetric(ms(slices.Max(blocked)), "other-vm-worst-during-restore-ms")
	b.ReportMetric(ms(slices.Max(loaded)), "other-vm-worst-during-raw-restore-ms")
}

func median(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
