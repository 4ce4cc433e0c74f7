package service

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/authn"
	"limen/libs/revocation"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/adapters/postgres"
	"limen/vm-service/internal/app"
)

// consoleParts are the use cases of consoles and stats, and what they share: the open sessions and
// the latest samples.
type consoleParts struct {
	sessions  *app.ConsoleSessions
	issue     app.IssueConsoleTicketHandler
	open      app.OpenConsoleHandler
	sample    app.SampleStatsHandler
	getStats  app.GetStatsHandler
	listStats app.ListStatsHandler
	every     time.Duration
}

func newConsoleParts(cfg Config, hypervisor *libvirt.Hypervisor, repo app.Repository, pool *pgxpool.Pool,
	revoked *revocation.List, now app.Clock) (*consoleParts, error) {
	uri := cfg.LibvirtURI
	if uri == "" {
		uri = "qemu:///system" // the documented default, for a Config built in code
	}
	dial, name, err := libvirt.StreamDialer(uri, cfg.LibvirtSocket)
	if err != nil {
		return nil, fmt.Errorf("LIBVIRT_URI: %w", err)
	}
	every := cfg.StatsInterval
	if every <= 0 {
		every = app.DefaultStatsInterval
	}
	sessions := &app.ConsoleSessions{Revoked: func(userID, version int64, sessionID string) bool {
		return revoked.Revoked(&authn.Claims{UserID: userID, Version: version, SessionID: sessionID})
	}}
	revoked.Subscribe(sessions.UserChanged)
	tickets := postgres.NewConsoleTickets(pool)
	cache := &app.StatsCache{}
	return &consoleParts{
		sessions: sessions,
		issue:    app.IssueConsoleTicketHandler{Repo: repo, Hypervisor: hypervisor, Tickets: tickets, TTL: cfg.ConsoleTicketTTL, Now: now},
		open: app.OpenConsoleHandler{Repo: repo, Tickets: tickets, Sessions: sessions, Now: now,
			Consoles: libvirt.NewConsoles(hypervisor, dial, name)},
		sample:    app.SampleStatsHandler{Machines: hypervisor, Runs: postgres.NewMachineRuns(pool), Cache: cache, Now: now},
		getStats:  app.GetStatsHandler{Repo: repo, Cache: cache, Now: now},
		listStats: app.ListStatsHandler{List: app.ListVMsHandler{Repo: repo}, Cache: cache, Now: now},
		every:     every,
	}, nil
}

// statsLoop samples every machine's counters every interval until ctx ends; a failure is logged once
// until a sample succeeds again.
func (s *Service) statsLoop(ctx context.Context) {
	tick := time.NewTicker(s.consoles.every)
	defer tick.Stop()
	failing := false
	for {
		err := s.consoles.sample.Handle(ctx, app.SampleStats{})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			s.log.WarnContext(ctx, "reading the machines' counters failed; stats show what was read before", "err", err)
			failing = true
		case err == nil && failing:
			s.log.InfoContext(ctx, "reading the machines' counters succeeded again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
