package app

// Application is every use case of vm-service, as its HTTP port and its background loops call them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change VMs: on a user's request, or in the background to keep statuses true.
type Commands struct {
	CreateVM        CreateVMHandler
	ChangePower     ChangePowerHandler
	ResizeVM        ResizeVMHandler
	DeleteVM        DeleteVMHandler
	DeleteOwnedVMs  DeleteOwnedVMsHandler
	SetBootOrder    SetBootOrderHandler
	FinalizeInstall FinalizeInstallHandler
	CreateSnapshot  CreateSnapshotHandler
	RestoreSnapshot RestoreSnapshotHandler
	DeleteSnapshot  DeleteSnapshotHandler
	ObserveStatus   ObserveStatusHandler
	Resync          ResyncHandler
	// Consoles: a ticket is issued for a user's request, redeemed when the gateway opens the console.
	IssueConsoleTicket IssueConsoleTicketHandler
	OpenConsole        OpenConsoleHandler
	// SampleStats reads every machine's counters, in the background.
	SampleStats SampleStatsHandler
}

// Queries read them.
type Queries struct {
	GetVM         GetVMHandler
	ListVMs       ListVMsHandler
	ListOSTypes   ListOSTypesHandler
	OwnerUsage    OwnerUsageHandler
	OwnersUsage   OwnersUsageHandler
	ListSnapshots ListSnapshotsHandler
	GetStats      GetStatsHandler
	ListStats     ListStatsHandler
}
