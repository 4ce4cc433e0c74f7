package failure

import (
	"fmt"
	"testing"
	"time"
)

func TestKindOfFindsWrappedFailures(t *testing.T) {
	notFound := New(NotFound, "VM not found")
	for _, tc := range []struct {
		err  error
		want Kind
	}{
		{notFound, NotFound},
		{fmt.Errorf("looking up: %w", notFound), NotFound},
		{fmt.Errorf("plain"), Unknown},
		{nil, Unknown},
		{InvalidField("name", "Name is required"), Invalid},
		{Retry(TooManyRequests, "slow down", time.Second), TooManyRequests},
	} {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if f, _ := As(InvalidField("name", "x")); f.Field != "name" {
		t.Errorf("field lost: %+v", f)
	}
}
