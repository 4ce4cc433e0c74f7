package procenv_test

import (
	"os"
	"slices"
	"testing"

	"limen/libs/testkit/procenv"
)

func TestOf_ValueAndWith(t *testing.T) {
	env, err := procenv.Of(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if procenv.Value(env, "PATH") != os.Getenv("PATH") {
		t.Fatalf("PATH in the process's environment: %q", procenv.Value(env, "PATH"))
	}
	base := []string{"A=1", "B=2=3", "C="}
	got := procenv.With(base, "B=4", "D=5")
	if !slices.Equal(got, []string{"A=1", "C=", "B=4", "D=5"}) || !slices.Equal(base, []string{"A=1", "B=2=3", "C="}) {
		t.Fatalf("With: %q (base now %q)", got, base)
	}
	if procenv.Value(base, "B") != "2=3" || procenv.Value(base, "C") != "" || procenv.Value(base, "E") != "" {
		t.Fatalf("Value of %q", base)
	}
}
