// Command vm-service owns LIMEN's virtual machines (schema vm): their lifecycle on libvirt and the
// events that announce every change.
package main

import (
	"limen/libs/process"
	"limen/vm-service/internal/service"
)

func main() { process.Main(service.Name, service.Run) }
