package app

import (
	"context"
	"errors"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// OpenConsole redeems a console ticket for the VM ref and opens the console it was issued for.
type OpenConsole struct {
	Ref    domain.Ref
	Secret string
}

// OpenConsoleHandler spends the ticket first, so that it never opens anything twice, whatever
// follows. A ticket that is unknown, spent, expired, issued for another VM, or whose token has been
// revoked since is refused alike (domain.ErrConsoleTicket).
type OpenConsoleHandler struct {
	Repo     Repository
	Tickets  ConsoleTickets
	Consoles Consoles
	Sessions *ConsoleSessions
	Now      Clock
}

func (uc OpenConsoleHandler) Handle(ctx context.Context, cmd OpenConsole) (*ConsoleSession, error) {
	if cmd.Secret == "" {
		return nil, domain.ErrConsoleTicket
	}
	ticket, err := uc.Tickets.Redeem(ctx, ticketHash(cmd.Secret))
	if err != nil {
		return nil, err
	}
	vm, err := uc.Repo.Get(ctx, cmd.Ref)
	if errors.Is(err, domain.ErrVMNotFound) {
		return nil, domain.ErrConsoleTicket
	}
	if err != nil {
		return nil, err
	}
	if !ticket.Admits(vm, uc.Now()) || uc.Sessions.revoked(ticket) {
		return nil, domain.ErrConsoleTicket
	}
	stream, err := uc.Consoles.OpenConsole(ctx, vm.UUID, ticket.Protocol)
	switch {
	case errors.Is(err, contract.ErrMachineNotFound):
		return nil, domain.ErrVMNotRunning
	case err != nil:
		return nil, hypervisorError("open the console", err)
	}
	return uc.Sessions.open(ticket, stream)
}
