// Package app holds the gateway's use cases and the ports they need.
package app

// Application is every use case of the gateway, as its ports call them.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands is empty: the gateway changes nothing itself; every change is a request it proxies to the
// service that owns the data.
type Commands struct{}

// Queries report what the gateway sees.
type Queries struct {
	CheckHealth   CheckHealthHandler
	WatchVMStatus WatchVMStatusHandler
}
