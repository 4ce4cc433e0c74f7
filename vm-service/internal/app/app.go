package app

// Application is every use case of vm-service, as its HTTP port and its background loops call them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change VMs: on a user's request, or in the background to keep statuses true.
type Commands struct {
	CreateVM       CreateVMHandler
	ChangePower    ChangePowerHandler
	ResizeVM       ResizeVMHandler
	DeleteVM       DeleteVMHandler
	DeleteOwnedVMs DeleteOwnedVMsHandler
	ObserveStatus  ObserveStatusHandler
	Resync         ResyncHandler
}

// Queries read them.
type Queries struct {
	GetVM       GetVMHandler
	ListVMs     ListVMsHandler
	ListOSTypes ListOSTypesHandler
	OwnerUsage  OwnerUsageHandler
}
