package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"limen/libs/pgdb"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

// Claims: keeping drive changes and ISO deletions apart without holding the database.
//
// A drive change retries a tray the guest keeps locked for up to 5 s, and any libvirt call can be
// slow; a transaction or lock held across it stalls every other use of that connection and of what it
// locks (the outbox relay included) and runs into idle_in_transaction_session_timeout. So nothing is
// held open across the hypervisor call. Instead a row in media_claims, written and removed in short
// transactions, says what is in progress:
//
//   - a drive change: (vm_uuid, iso_name) with iso_name the ISO attached ("" for an eject);
//     vm_uuid is UNIQUE, so one change per VM at a time on all replicas;
//   - a deletion: (iso_name, deleting), at most one per ISO.
//
// Attach: claim the drive (below) -> re-resolve the ISO -> DomainUpdateDeviceFlags (with its
// retries) -> Record: the history row, its event and the claim's removal in one short transaction.
// Delete: claim the deletion -> Holding (which VMs' drives hold the image) -> remove the volume ->
// release. The claim of a drive for an attach of X and the claim of X's deletion each run in a
// transaction that first takes the advisory lock of X's name (pg_advisory_xact_lock, released at
// commit, milliseconds later), then checks for the other kind of claim on X and inserts its own.
// With that lock the check and the insert cannot interleave with the other kind's (no write skew
// under READ COMMITTED), so on every replica:
//
//   - an attach of X that claimed first holds its claim until the drive holds X (or it failed); the
//     deletion waits for that claim to go, and its Holding then sees the drive holding X: 409;
//   - a deletion that claimed first holds its claim until the file is gone; the attach waits, then
//     re-resolves X under its own claim and finds it missing: 404.
//
// Either way no VM ends up pointing at a deleted ISO. Waiting is polling with a short backoff (a
// claim lives for milliseconds to seconds), preceded by an in-process queue per VM so one replica's
// requests for a VM hand over without polling. A claim expires claimTTL after it was taken or last
// renewed; its holder renews it every claimRenew while the hypervisor works, so only a dead replica's
// claims expire, and they are removed by the next claim that meets them. Every call carries a
// deadline (pgdb.Deadline, or the claim wait's), on top of the server's statement and lock timeouts.
const (
	claimTTL   = 20 * time.Second
	claimRenew = 5 * time.Second
	// claimWait bounds waiting for another claim, within the gateway's 30 s for the whole request.
	claimWait = 15 * time.Second
	pollFirst = 10 * time.Millisecond
	pollMax   = 200 * time.Millisecond
)

// lockISO is the transaction-scoped advisory lock of an ISO's name, taken by both kinds of claim.
const lockISO = `SELECT pg_advisory_xact_lock(hashtextextended('limen-iso:' || $1::text, 0))`

// turn is this process's queue for one VM's drive.
type turn struct {
	slot  chan struct{}
	users int // holding or waiting
}

// heldClaim is a claim this process holds: its renewal and its place in the VM's queue.
type heldClaim struct {
	stop    context.CancelFunc
	stopped chan struct{}
	leave   func()
}

func (h *History) ClaimDrive(ctx context.Context, vm uuid.UUID, iso string) (app.Claim, error) {
	wait, cancel := context.WithTimeout(ctx, claimWait)
	defer cancel()
	leave, err := h.takeTurn(wait, vm)
	if err != nil {
		return app.Claim{}, waitError(ctx, err)
	}
	claim := app.Claim{Token: uuid.New(), VM: vm, ISO: iso}
	if err := poll(wait, func(ctx context.Context) (bool, error) { return h.tryDrive(ctx, claim) }); err != nil {
		leave()
		return app.Claim{}, waitError(ctx, err)
	}
	h.hold(claim, leave)
	return claim, nil
}

// tryDrive takes the drive claim if no change of the VM and no deletion of the ISO is in progress.
func (h *History) tryDrive(ctx context.Context, c app.Claim) (bool, error) {
	claimed := false
	err := pgdb.InTx(ctx, h.pool, func(tx pgx.Tx) error {
		if c.ISO != "" {
			if _, err := tx.Exec(ctx, lockISO, c.ISO); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM media_claims WHERE expires_at <= now() AND (vm_uuid = $1 OR deleting AND iso_name = $2)`,
			c.VM, c.ISO); err != nil {
			return err
		}
		if c.ISO != "" {
			var deleting bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM media_claims WHERE deleting AND iso_name = $1)`, c.ISO).Scan(&deleting); err != nil || deleting {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO media_claims (token, vm_uuid, iso_name, deleting, expires_at)
			VALUES ($1, $2, $3, false, now() + $4 * interval '1 millisecond') ON CONFLICT (vm_uuid) DO NOTHING`,
			c.Token, c.VM, c.ISO, claimTTL.Milliseconds())
		claimed = err == nil && tag.RowsAffected() == 1
		return err
	})
	return claimed, err
}

func (h *History) ClaimDeletion(ctx context.Context, iso string) (app.Claim, error) {
	wait, cancel := context.WithTimeout(ctx, claimWait)
	defer cancel()
	claim := app.Claim{Token: uuid.New(), ISO: iso}
	attaching := 0
	err := poll(wait, func(ctx context.Context) (bool, error) {
		var ok bool
		var err error
		ok, attaching, err = h.tryDeletion(ctx, claim)
		return ok, err
	})
	if err != nil {
		if attaching > 0 && ctx.Err() == nil {
			return app.Claim{}, domain.ISOInUse(iso, attaching)
		}
		return app.Claim{}, waitError(ctx, err)
	}
	h.hold(claim, func() {})
	return claim, nil
}

// tryDeletion takes the deletion claim if no attach of the ISO and no other deletion of it is in
// progress; attaching is how many attaches are.
func (h *History) tryDeletion(ctx context.Context, c app.Claim) (claimed bool, attaching int, err error) {
	err = pgdb.InTx(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockISO, c.ISO); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM media_claims WHERE expires_at <= now() AND iso_name = $1`, c.ISO); err != nil {
			return err
		}
		var deleting int
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT deleting), count(*) FILTER (WHERE deleting)
			FROM media_claims WHERE iso_name = $1`, c.ISO).Scan(&attaching, &deleting); err != nil || attaching > 0 || deleting > 0 {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO media_claims (token, vm_uuid, iso_name, deleting, expires_at)
			VALUES ($1, NULL, $2, true, now() + $3 * interval '1 millisecond')`, c.Token, c.ISO, claimTTL.Milliseconds())
		claimed = err == nil
		return err
	})
	return claimed, attaching, err
}

func (h *History) Release(ctx context.Context, claim app.Claim) error {
	leave := h.drop(claim.Token)
	defer leave()
	ctx, cancel := pgdb.Deadline(context.WithoutCancel(ctx))
	defer cancel()
	return h.endClaim(ctx, claim.Token)
}

func (h *History) endClaim(ctx context.Context, token uuid.UUID) error {
	_, err := h.pool.Exec(ctx, `DELETE FROM media_claims WHERE token = $1`, token)
	return err
}

// poll calls try until it reports success or fails, pausing with a growing backoff in between, until
// ctx (which has the claim wait's deadline) ends.
func poll(ctx context.Context, try func(ctx context.Context) (bool, error)) error {
	pause := pollFirst
	for {
		call, cancel := pgdb.Deadline(ctx)
		ok, err := try(call)
		cancel()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, pollMax)
	}
}

// waitError is domain.ErrMediaBusy for a claim that waited out claimWait, the caller's own error when
// its request ended, and any other failure as it is.
func waitError(caller context.Context, err error) error {
	if caller.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return domain.ErrMediaBusy
	}
	return err
}

// takeTurn waits for this process's turn at vm's drive; leave hands it to the next waiter.
func (h *History) takeTurn(ctx context.Context, vm uuid.UUID) (leave func(), err error) {
	h.mu.Lock()
	t := h.turns[vm]
	if t == nil {
		t = &turn{slot: make(chan struct{}, 1)}
		h.turns[vm] = t
	}
	t.users++
	h.mu.Unlock()
	done := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if t.users--; t.users == 0 {
			delete(h.turns, vm)
		}
	}
	select {
	case t.slot <- struct{}{}:
		return func() { <-t.slot; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// hold renews the claim until drop.
func (h *History) hold(claim app.Claim, leave func()) {
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(claimRenew)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			call, cancel := pgdb.Deadline(ctx)
			_, _ = h.pool.Exec(call, `UPDATE media_claims SET expires_at = now() + $2 * interval '1 millisecond' WHERE token = $1`,
				claim.Token, claimTTL.Milliseconds()) // a missed renewal is made up by the next one
			cancel()
		}
	}()
	h.mu.Lock()
	h.held[claim.Token] = &heldClaim{stop: stop, stopped: stopped, leave: leave}
	h.mu.Unlock()
}

// drop stops renewing the claim and returns what gives up its place in the VM's queue, to be called
// once the claim's row is gone.
func (h *History) drop(token uuid.UUID) (leave func()) {
	h.mu.Lock()
	held := h.held[token]
	delete(h.held, token)
	h.mu.Unlock()
	if held == nil {
		return func() {}
	}
	held.stop()
	<-held.stopped
	return held.leave
}
