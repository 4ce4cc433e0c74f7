// Package e2e_test runs the gateway in front of a real vm-service (built from this workspace and
// started as its own process) over the package's Postgres and private libvirtd, with the real tiny
// Linux test guest: what a browser sees of a VM's console and load.
package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"limen/libs/testkit"
	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/pgtest"
)

func TestMain(m *testing.M) {
	testkit.Main(m, pgtest.StartShared, libvirttest.StartShared, buildVMService)
}

// vmServiceBin is vm-service's binary, built once for the package.
var vmServiceBin string

func buildVMService(ctx context.Context) (func() error, error) {
	dir, err := os.MkdirTemp("", "limen-e2e-")
	if err != nil {
		return nil, err
	}
	vmServiceBin = filepath.Join(dir, "vm-service")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", vmServiceBin, "limen/vm-service/cmd/vm-service").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build vm-service: %v: %s", err, out)
	}
	return func() error { return os.RemoveAll(dir) }, nil
}
