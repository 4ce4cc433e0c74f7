// Package testkit runs a test package against real dependencies. Each kit below it (pgtest,
// libvirttest) starts one dependency per test package; Main combines them in TestMain:
//
//	func TestMain(m *testing.M) { testkit.Main(m, pgtest.StartShared, libvirttest.StartShared) }
package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
)

// Start starts one dependency for the whole test package and says how to stop it.
type Start func(ctx context.Context) (stop func() error, err error)

// Main starts every dependency in order, runs the tests, stops the dependencies in reverse order and
// exits; a dependency that fails to start or stop fails the run.
func Main(m *testing.M, starts ...Start) {
	var stops []func() error
	stopAll := func() error {
		var errs []error
		for _, stop := range slices.Backward(stops) {
			errs = append(errs, stop())
		}
		return errors.Join(errs...)
	}
	for _, start := range starts {
		stop, err := start(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, "testkit:", errors.Join(err, stopAll()))
			os.Exit(1)
		}
		stops = append(stops, stop)
	}
	code := m.Run()
	if err := stopAll(); err != nil {
		fmt.Fprintln(os.Stderr, "testkit: stop:", err)
		code = 1
	}
	os.Exit(code)
}
