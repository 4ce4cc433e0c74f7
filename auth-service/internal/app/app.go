package app

// Application is every use case of auth-service, as its HTTP port and its background work call them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change accounts and logins.
type Commands struct {
	Register     RegisterHandler
	Login        LoginHandler
	Refresh      RefreshHandler
	Logout       LogoutHandler
	ApproveUser  ApproveUserHandler
	ChangeRole   ChangeRoleHandler
	DeleteUser   DeleteUserHandler
	EnsureAdmin  EnsureAdminHandler
	PruneExpired PruneExpiredHandler
}

// Queries read them.
type Queries struct {
	CurrentUser  CurrentUserHandler
	CurrentAdmin CurrentAdminHandler
	ListUsers    ListUsersHandler
	GetUser      GetUserHandler
	FindUser     FindUserHandler
}
