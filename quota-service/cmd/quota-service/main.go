// Command quota-service keeps every user's limits and usage (schema quota) and admits the changes
// that grow usage through atomic reservations.
package main

import (
	"limen/libs/process"
	"limen/quota-service/internal/service"
)

func main() { process.Main(service.Name, service.Run) }
