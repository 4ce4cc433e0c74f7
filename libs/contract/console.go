package contract

import "net/url"

// A VM's console: vm-service issues a console ticket (GET /api/vms/{ref}/console), the browser opens
// the gateway's WebSocket ConsoleSocketPath(uuid)?token=<ticket>, and the gateway redeems the ticket
// at vm-service's InternalConsoleRoute, which answers 101 and then carries the console's bytes both
// ways on the same connection: the display's RFB stream, or the guest's serial line.
const (
	// ConsoleSocketPrefix is the gateway's console WebSocket, followed by the VM's uuid.
	ConsoleSocketPrefix = "/vnc/"
	// ConsoleTicketParam is the query parameter of the WebSocket that carries the ticket.
	ConsoleTicketParam = "token"
	// InternalConsoleRoute redeems a ticket (in ConsoleTicketHeader) for the VM ref and, when the
	// request asks to upgrade to ConsoleUpgrade, switches the connection to the console's bytes.
	InternalConsoleRoute = InternalPrefix + "/vms/:ref/console"
	// ConsoleTicketHeader carries the ticket to InternalConsoleRoute, out of URLs and access logs.
	ConsoleTicketHeader = "X-Limen-Console-Ticket"
	// ConsoleUpgrade is the protocol InternalConsoleRoute switches to: raw bytes, no framing.
	ConsoleUpgrade = "limen-console"
)

// Console protocols: what a ticket opens.
const (
	ConsoleVNC    = "vnc"
	ConsoleSerial = "serial"
)

// ConsoleSocketPath is the gateway's console WebSocket of a VM.
func ConsoleSocketPath(vmUUID string) string { return ConsoleSocketPrefix + url.PathEscape(vmUUID) }

// InternalConsolePath is InternalConsoleRoute for ref.
func InternalConsolePath(ref string) string {
	return InternalPrefix + "/vms/" + url.PathEscape(ref) + "/console"
}
