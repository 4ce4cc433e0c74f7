// Command gateway is LIMEN's single entry point: it authenticates requests, routes /api to the
// services, reports their aggregated health, serves the API document and pushes live VM status to
// WebSocket clients.
package main

import (
	"limen/gateway/internal/service"
	"limen/libs/process"
)

func main() { process.Main(service.Name, service.Run) }
