// Command auth-service owns LIMEN's users, passwords and tokens (schema auth).
package main

import (
	"limen/auth-service/internal/service"
	"limen/libs/process"
)

func main() { process.Main(service.Name, service.Run) }
