package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"limen/vm-service/internal/domain"
)

// DefaultConsoleTicketTTL is how long a console ticket may wait to be used (LIMEN_CONSOLE_TICKET_TTL).
const DefaultConsoleTicketTTL = 60 * time.Second

// IssueConsoleTicket asks for a ticket to one console of a VM the caller may see. TokenVersion and
// SessionID are those of the caller's access token: the console closes when that token is revoked.
type IssueConsoleTicket struct {
	Caller       Caller
	TokenVersion int64
	SessionID    string
	Ref          domain.Ref
	Protocol     domain.ConsoleProtocol
}

// IssuedTicket is the secret its holder presents once, and what it opens.
type IssuedTicket struct {
	Secret string
	Ticket domain.ConsoleTicket
}

// IssueConsoleTicketHandler issues tickets for running (or paused) machines only, as libvirt sees
// them: the record may lag a start or stop by an event.
type IssueConsoleTicketHandler struct {
	Repo       Repository
	Hypervisor Hypervisor
	Tickets    ConsoleTickets
	// TTL is how long a ticket may wait to be used (0: DefaultConsoleTicketTTL).
	TTL time.Duration
	Now Clock
}

func (uc IssueConsoleTicketHandler) Handle(ctx context.Context, cmd IssueConsoleTicket) (IssuedTicket, error) {
	vm, err := load(ctx, uc.Repo, cmd.Caller, cmd.Ref)
	if err != nil {
		return IssuedTicket{}, err
	}
	status, _, err := observe(ctx, uc.Hypervisor, vm.UUID)
	if err != nil {
		return IssuedTicket{}, hypervisorError("read the machine's state", err)
	}
	if !domain.ConsoleAvailable(status) {
		return IssuedTicket{}, domain.ErrVMNotRunning
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // crypto/rand never fails on Linux
	ttl := uc.TTL
	if ttl <= 0 {
		ttl = DefaultConsoleTicketTTL
	}
	issued := IssuedTicket{Secret: base64.RawURLEncoding.EncodeToString(secret), Ticket: domain.ConsoleTicket{
		VMUUID: vm.UUID, Protocol: cmd.Protocol, UserID: cmd.Caller.UserID, Admin: cmd.Caller.Admin,
		TokenVersion: cmd.TokenVersion, SessionID: cmd.SessionID, ExpiresAt: uc.Now().Add(ttl),
	}}
	if err := uc.Tickets.Issue(ctx, ticketHash(issued.Secret), issued.Ticket); err != nil {
		return IssuedTicket{}, err
	}
	return issued, nil
}

// ticketHash is what the ticket store keeps of a secret: a leaked table opens no console.
func ticketHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
