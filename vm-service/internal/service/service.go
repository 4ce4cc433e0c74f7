// Package service wires vm-service's adapters, use cases, background loops and HTTP port; main runs it
// (Run) and the component tests build it the same way (New).
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/libs/revocation"
	"limen/libs/telemetry"
	"limen/libs/web"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/adapters/mediaclient"
	"limen/vm-service/internal/adapters/osfile"
	"limen/vm-service/internal/adapters/postgres"
	"limen/vm-service/internal/adapters/quotaclient"
	"limen/vm-service/internal/app"
	porthttp "limen/vm-service/internal/ports/http"
	"limen/vm-service/migrations"
)

// Name is the service's name in logs, traces and event sources.
const Name = "vm-service"

// Config is vm-service's environment: the settings every service shares, and its own.
type Config struct {
	contract.Settings
	DatabaseURL    string        `env:"DATABASE_URL,required" validate:"required"`
	KafkaBrokers   []string      `env:"KAFKA_BROKERS,required" validate:"required,min=1,dive,hostname_port"`
	InternalToken  string        `env:"LIMEN_INTERNAL_TOKEN"`
	LibvirtURI     string        `env:"LIBVIRT_URI" envDefault:"qemu:///system" validate:"required"`
	LibvirtSocket  string        `env:"LIBVIRT_SOCKET"`
	DomainType     string        `env:"LIMEN_DOMAIN_TYPE" envDefault:"kvm" validate:"oneof=kvm qemu"`
	StoragePool    string        `env:"LIMEN_STORAGE_POOL" envDefault:"limen-vms" validate:"required"`
	StoragePath    string        `env:"LIMEN_STORAGE_POOL_PATH" envDefault:"/var/lib/limen/vms" validate:"required"`
	Network        string        `env:"LIMEN_VM_NETWORK" envDefault:"user"`
	NetworkUnsafe  bool          `env:"LIMEN_VM_NETWORK_UNSAFE"`
	OSTypesFile    string        `env:"LIMEN_OS_TYPES_FILE"`
	StopTimeout    time.Duration `env:"LIMEN_VM_STOP_TIMEOUT" envDefault:"60s" validate:"gt=0"`
	ResyncInterval time.Duration `env:"LIMEN_RESYNC_INTERVAL" envDefault:"30s" validate:"gt=0"`
	OrphanGrace    time.Duration `env:"LIMEN_ORPHAN_GRACE" envDefault:"10m" validate:"gte=0"`
	TaskHeartbeat  time.Duration `env:"LIMEN_TASK_HEARTBEAT" envDefault:"5s" validate:"gt=0"`
	// ActionWait is how long an action request waits for the action's end before it is answered 202
	// and the action goes on in the background; 0: until it ends.
	ActionWait     time.Duration `env:"LIMEN_ACTION_WAIT" envDefault:"10s" validate:"gte=0"`
	HostName       string        `env:"LIMEN_HOST_NAME"`
	TrustedProxies []string      `env:"LIMEN_TRUSTED_PROXIES" envDefault:"127.0.0.1,::1"`
	// MediaServiceURL is media-service, asked to eject a VM's installer (finalize-install).
	MediaServiceURL string `env:"MEDIA_SERVICE_URL" envDefault:"http://127.0.0.1:18083" validate:"omitempty,http_url"`
	// QuotaServiceURL is quota-service, which every growth of a user's usage is reserved with; there
	// is no running without it: out of reach, growth is refused.
	QuotaServiceURL string `env:"QUOTA_SERVICE_URL" envDefault:"http://127.0.0.1:18084" validate:"required,http_url"`
	// SnapshotsPerVM is how many snapshots one VM may have.
	SnapshotsPerVM int `env:"LIMEN_SNAPSHOTS_PER_VM" envDefault:"10" validate:"gte=1"`
	// ConsoleTicketTTL is how long a console ticket may wait to be used.
	ConsoleTicketTTL time.Duration `env:"LIMEN_CONSOLE_TICKET_TTL" envDefault:"60s" validate:"gt=0"`
	// StatsInterval is how often every machine's counters are read (the stats' CPU use is over it).
	StatsInterval time.Duration `env:"LIMEN_STATS_INTERVAL" envDefault:"5s" validate:"gt=0"`
	// DisplayListen puts new VMs' displays on TCP at this address of the libvirt host, with a
	// password only LIMEN knows, instead of on a unix socket: for a libvirt on another host.
	DisplayListen string `env:"LIMEN_DISPLAY_LISTEN" validate:"omitempty,ip"`
}

// Run is vm-service's process: it opens the database (migrated) and the libvirt connection, serves
// until ctx ends, and leaves vm.replicas after the drain, so requests still draining keep their task
// claims alive until they are done.
func Run(ctx context.Context, cfg Config, env process.Env) error {
	pool, err := outbox.Open(ctx, cfg.DatabaseURL, "vm", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()

	conn := libvirtconn.New(libvirtconn.Config{URI: cfg.LibvirtURI, Socket: cfg.LibvirtSocket}, env.Log)
	var svc *Service
	defer func() {
		if svc != nil {
			svc.Close()
		}
	}()
	return process.Serve(ctx, cfg.Addr(Name), cfg.DrainTimeout, env.Log, func(ctx context.Context) (*Service, error) {
		var err error
		svc, err = New(ctx, cfg, pool, conn, env.Log, env.Telemetry)
		return svc, err
	}, conn.Run)
}

// heartbeatsToDeath is how many heartbeats a process may miss before its task claims stop blocking.
const heartbeatsToDeath = 3

// Service is vm-service assembled: its HTTP app and the loops that keep statuses and events flowing.
type Service struct {
	app *fiber.App

	// replica is this process in vm.replicas; its heartbeat keeps its task claims alive from New to
	// Close, which comes after the HTTP drain, so requests still draining keep their claims.
	replica   *postgres.Replica
	heartbeat time.Duration
	stopBeat  context.CancelFunc
	beating   sync.WaitGroup
	// tasks are the tasks this process runs; the actions still running when Run's ctx ends get up
	// to drain to end by themselves, and its retries of unrecorded task ends stop at Close.
	tasks *app.Tasks
	drain time.Duration
	// kick asks the resync loop for a resync now (the database is back after an outage, or a lifecycle
	// event's update failed).
	kick chan struct{}

	conn  *libvirtconn.Manager
	relay *outbox.Relay
	// consoles are the open console sessions and the stats sampler.
	consoles *consoleParts
	// follower applies auth-service's user changes: revoked tokens, and deleted users' VMs.
	follower *revocation.Follower
	observe  app.ObserveStatusHandler
	resync   app.ResyncHandler
	every    time.Duration
	log      *slog.Logger
}

// New builds the service over an open pool (migrated by the caller) and a libvirt connection manager
// that Run keeps connected.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, conn *libvirtconn.Manager, log *slog.Logger, tel *telemetry.Telemetry) (*Service, error) {
	now := func() time.Time { return time.Now().UTC() }
	catalogue, err := osfile.Load(cfg.OSTypesFile)
	if err != nil {
		return nil, err
	}
	if !libvirt.Isolated(cfg.Network) && !cfg.NetworkUnsafe {
		return nil, fmt.Errorf("LIMEN_VM_NETWORK=%q can let guests connect to this host's services (database, broker, LIMEN's own ports): "+
			"use %q (isolated), or set LIMEN_VM_NETWORK_UNSAFE=true once the host's firewall keeps guests away from them (README, Isolation)",
			cfg.Network, libvirt.NetworkIsolated)
	}
	revoked := revocation.NewList()
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience, Revocations: revoked})
	if err != nil {
		return nil, err
	}
	if err := conn.WaitConnected(ctx); err != nil {
		return nil, err
	}
	installation, err := postgres.Installation(ctx, pool)
	if err != nil {
		return nil, err
	}
	hypervisor, err := libvirt.New(conn.Client, libvirt.Config{DomainType: cfg.DomainType, Pool: cfg.StoragePool,
		PoolPath: cfg.StoragePath, Network: cfg.Network, Installation: installation.String(), DisplayListen: cfg.DisplayListen})
	if err != nil {
		return nil, err
	}
	hardened, err := hypervisor.Harden(ctx)
	if err != nil {
		return nil, fmt.Errorf("bring VM definitions of earlier versions up to date: %w", err)
	}
	if len(hardened) > 0 {
		log.Warn("VM definitions of an earlier version hardened (display, serial line, isolated network); running VMs take them at their next start", "vms", hardened)
	}
	host := cfg.HostName
	if host == "" {
		host, _ = os.Hostname()
	}
	heartbeat := cfg.TaskHeartbeat
	if heartbeat <= 0 {
		heartbeat = 5 * time.Second // the documented default, for a Config built in code
	}
	lease := heartbeatsToDeath * heartbeat
	// This process's identity, alive from its first beat; then the claims of processes that died
	// (crashed mid-action, killed) are released at once instead of blocking their VMs.
	events := outbox.NewWriter(Name)
	replica := postgres.NewReplica(pool, events, host, lease)
	if err := replica.Beat(ctx); err != nil {
		return nil, fmt.Errorf("register this process's heartbeat: %w", err)
	}
	if released, err := replica.ReleaseDead(ctx); err != nil {
		return nil, fmt.Errorf("release the task claims of dead processes: %w", err)
	} else if released > 0 {
		log.Warn("released the task claims of dead processes (heartbeat lapsed, or gone from this machine)", "vms", released)
	}
	repo := postgres.NewVMs(pool, events, lease)
	quota := quotaclient.New(cfg.QuotaServiceURL, cfg.InternalToken)
	tasks := app.NewTasks(log)
	power := app.ChangePowerHandler{Repo: repo, Hypervisor: hypervisor, StopTimeout: cfg.StopTimeout, Replica: replica.ID(), Tasks: tasks, Now: now}
	deleteVM := app.DeleteVMHandler{Repo: repo, Hypervisor: hypervisor, Quota: quota, Replica: replica.ID(), Tasks: tasks, Now: now}
	bootOrder := app.SetBootOrderHandler{Repo: repo, Hypervisor: hypervisor, Replica: replica.ID(), Tasks: tasks, Now: now}
	snapshots := postgres.NewSnapshots(repo)
	snapshotsPerVM := cfg.SnapshotsPerVM
	if snapshotsPerVM <= 0 {
		snapshotsPerVM = 10 // the documented default, for a Config built in code
	}
	consoles, err := newConsoleParts(cfg, hypervisor, repo, pool, revoked, now)
	if err != nil {
		return nil, err
	}
	application := app.Application{
		Commands: app.Commands{
			CreateVM:        app.CreateVMHandler{Repo: repo, Hypervisor: hypervisor, Quota: quota, Catalogue: catalogue, Power: power, Host: host, Now: now, Log: log},
			ChangePower:     power,
			ResizeVM:        app.ResizeVMHandler{Repo: repo, Quota: quota, Hypervisor: hypervisor, Replica: replica.ID(), Tasks: tasks, Now: now},
			DeleteVM:        deleteVM,
			DeleteOwnedVMs:  app.DeleteOwnedVMsHandler{Repo: repo, Delete: deleteVM, Log: log},
			SetBootOrder:    bootOrder,
			FinalizeInstall: app.FinalizeInstallHandler{Boot: bootOrder, Media: mediaclient.New(cfg.MediaServiceURL, cfg.InternalToken)},
			CreateSnapshot: app.CreateSnapshotHandler{Repo: repo, Snapshots: snapshots, Hypervisor: hypervisor, Limit: snapshotsPerVM,
				Replica: replica.ID(), Tasks: tasks, Now: now},
			RestoreSnapshot: app.RestoreSnapshotHandler{Repo: repo, Snapshots: snapshots, Quota: quota, Hypervisor: hypervisor,
				Replica: replica.ID(), Tasks: tasks, Now: now},
			DeleteSnapshot: app.DeleteSnapshotHandler{Repo: repo, Snapshots: snapshots, Hypervisor: hypervisor,
				Replica: replica.ID(), Tasks: tasks, Now: now},
			ObserveStatus: app.ObserveStatusHandler{Repo: repo, Hypervisor: hypervisor, Now: now},
			Resync: app.ResyncHandler{Repo: repo, Hypervisor: hypervisor, Replica: replica.ID(), Tasks: tasks,
				OrphanGrace: cfg.OrphanGrace, Now: now, Log: log,
				Snapshots: &app.ResyncSnapshotsHandler{Snapshots: snapshots, Hypervisor: hypervisor, Replica: replica.ID(), Tasks: tasks, Now: now, Log: log}},
			IssueConsoleTicket: consoles.issue,
			OpenConsole:        consoles.open,
			SampleStats:        consoles.sample,
		},
		Queries: app.Queries{
			GetVM:         app.GetVMHandler{Repo: repo},
			ListVMs:       app.ListVMsHandler{Repo: repo},
			ListOSTypes:   app.ListOSTypesHandler{Catalogue: catalogue},
			OwnerUsage:    app.OwnerUsageHandler{Repo: repo},
			OwnersUsage:   app.OwnersUsageHandler{Repo: repo},
			ListSnapshots: app.ListSnapshotsHandler{Repo: repo, Snapshots: snapshots},
			GetStats:      consoles.getStats,
			ListStats:     consoles.listStats,
		},
	}

	follower := revocation.NewFollower(cfg.KafkaBrokers, revoked, log)
	background := context.WithoutCancel(ctx)
	revoked.Subscribe(func(userID int64) {
		if revoked.Deleted(userID) {
			go func() {
				if err := application.Commands.DeleteOwnedVMs.Handle(background, app.DeleteOwnedVMs{OwnerID: userID}); err != nil {
					log.Warn("deleting the VMs of a deleted user", "owner_id", userID, "err", err)
				}
			}()
		}
	})

	fiberApp := web.NewApp(web.AppConfig{Service: Name, Logger: log, Telemetry: tel, TrustedProxies: cfg.TrustedProxies,
		Checks: map[string]web.Check{"db": pgdb.Ping(pool), "libvirt": conn.Ready, "revocations": follower.Ready}})
	porthttp.Mount(fiberApp, application, porthttp.Config{Verifier: verifier, InternalToken: cfg.InternalToken, ActionWait: cfg.ActionWait})

	s := &Service{
		app:       fiberApp,
		conn:      conn,
		relay:     outbox.NewRelay(pool, outbox.RelayConfig{Brokers: cfg.KafkaBrokers}, log),
		observe:   application.Commands.ObserveStatus,
		resync:    application.Commands.Resync,
		every:     cfg.ResyncInterval,
		log:       log,
		follower:  follower,
		replica:   replica,
		heartbeat: heartbeat,
		tasks:     tasks,
		drain:     cfg.DrainTimeout,
		kick:      make(chan struct{}, 1),
		consoles:  consoles,
	}
	beatCtx, stopBeat := context.WithCancel(background)
	s.stopBeat = stopBeat
	s.beating.Add(1)
	go func() { defer s.beating.Done(); s.heartbeatLoop(beatCtx) }()
	// Every (re)connect may have missed events: resync at once rather than at the next tick.
	conn.OnConnect(func(ctx context.Context) { s.resyncNow(ctx) })
	return s, nil
}

// App is the service's HTTP app.
func (s *Service) App() *fiber.App { return s.app }

// Run keeps the background loops going until ctx is done: lifecycle events, the periodic resync, the
// stats sampler and the outbox relay. Actions still running in the background then get up to the drain timeout to end
// (see app.Tasks.Drain) before the loops stop, so their ends are observed, recorded and announced.
func (s *Service) Run(ctx context.Context) error {
	s.resyncNow(ctx) // the first connection came before the hook was registered
	loops, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	go func() {
		<-ctx.Done()
		s.tasks.Drain(s.drain)
		stopLoops()
	}()
	var wg sync.WaitGroup
	var relayErr error
	wg.Add(4)
	go func() { defer wg.Done(); _ = s.follower.Run(loops) }()
	go func() { defer wg.Done(); libvirt.Watch(loops, s.conn.Events(), s.observeEvent, s.log) }()
	go func() { defer wg.Done(); s.resyncLoop(loops) }()
	go func() { defer wg.Done(); relayErr = s.relay.Run(loops) }()
	wg.Go(func() { s.statsLoop(loops) })
	wg.Wait()
	if errors.Is(relayErr, context.Canceled) {
		relayErr = nil
	}
	return errors.Join(relayErr, s.relay.Close())
}

// Close ends the open consoles (Fiber's drain does not wait for them), the actions still running
// (their claims alive meanwhile) and the retries of unrecorded task ends, stops the heartbeat and removes this process from vm.replicas, so any claim still in
// its name is dead at once. Call it after the HTTP server drained (Run does, after process.Serve
// returns).
func (s *Service) Close() {
	s.consoles.sessions.Close()
	s.tasks.Close()
	s.stopBeat()
	s.beating.Wait()
	if err := s.replica.Leave(context.Background()); err != nil {
		s.log.Warn("leaving vm.replicas", "err", err)
	}
}

// outageBeat is how often the heartbeat is tried while the database is out of reach, so that its return
// is noticed (and repaired) within a second rather than a heartbeat.
const outageBeat = time.Second

func (s *Service) heartbeatLoop(ctx context.Context) {
	failing := false
	for {
		wait := s.heartbeat
		if failing {
			wait = min(wait, outageBeat)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := s.replica.Beat(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				s.log.Warn("heartbeat failed; this process's task claims lapse if it keeps failing", "err", err)
			}
			failing = true
		case failing:
			// The database is back: what could not be recorded meanwhile (lifecycle events, a
			// resync, ends of tasks) is repaired now rather than at the next tick.
			failing = false
			s.log.Info("database reachable again; resyncing")
			s.resyncSoon()
		}
	}
}

// resyncLoop resyncs every s.every and whenever kicked; a resync that failed (the database or libvirt
// out of reach) is tried again every outageBeat until one succeeds, so what was missed meanwhile
// (lifecycle events whose update failed, ends of tasks) is repaired soon after the outage.
func (s *Service) resyncLoop(ctx context.Context) {
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	var again <-chan time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		case <-again:
		}
		err := s.resync.Handle(ctx, app.Resync{})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				s.log.WarnContext(ctx, "resync failed; trying again every second until it succeeds", "err", err)
			}
			failing, again = true, time.After(outageBeat)
		default:
			if failing {
				s.log.InfoContext(ctx, "resync succeeded again")
			}
			failing, again = false, nil
		}
	}
}

// resyncSoon asks the resync loop for a resync now (a lifecycle event's update failed).
func (s *Service) resyncSoon() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// observeEvent applies a lifecycle event; when that fails, a resync is asked for, which is retried until the
// database takes it.
func (s *Service) observeEvent(ctx context.Context, id uuid.UUID) error {
	err := s.observe.Handle(ctx, app.ObserveStatus{VMUUID: id})
	if err != nil && ctx.Err() == nil {
		s.resyncSoon()
	}
	return err
}

func (s *Service) resyncNow(ctx context.Context) {
	if err := s.resync.Handle(ctx, app.Resync{}); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "resync failed", "err", err)
	}
}
