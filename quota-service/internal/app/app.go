package app

// Application is every use case of quota-service, as its ports call them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change limits, reservations and usage.
type Commands struct {
	SetQuota     SetQuotaHandler
	Reserve      ReserveHandler
	Commit       CommitHandler
	Release      ReleaseHandler
	ReleaseVM    ReleaseVMHandler
	ApplyVMEvent ApplyVMEventHandler
	ForgetUser   ForgetUserHandler
	Reconcile    ReconcileHandler
}

// Queries read quotas.
type Queries struct {
	GetQuota   GetQuotaHandler
	ListQuotas ListQuotasHandler
}
