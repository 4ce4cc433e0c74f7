package app

// Application is every use case of media-service, as its ports call them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands change a drive or the library.
type Commands struct {
	ChangeMedia ChangeMediaHandler
	UploadISO   UploadISOHandler
	DeleteISO   DeleteISOHandler
}

// Queries read them.
type Queries struct {
	GetMedia GetMediaHandler
	ListISOs ListISOsHandler
}
