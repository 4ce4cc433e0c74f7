// Command media-service owns the ISO library and the VMs' CD-ROM drives (schema media), and announces
// every change of a drive.
package main

import (
	"limen/libs/process"
	"limen/media-service/internal/service"
)

func main() { process.Main(service.Name, service.Run) }
