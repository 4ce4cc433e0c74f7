package http

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"limen/auth-service/internal/domain"
	"limen/libs/web"
)

var statusOf = map[domain.Kind]int{
	domain.KindInvalid:         http.StatusBadRequest,
	domain.KindUnauthenticated: http.StatusUnauthorized,
	domain.KindForbidden:       http.StatusForbidden,
	domain.KindNotFound:        http.StatusNotFound,
	domain.KindConflict:        http.StatusConflict,
	domain.KindTooManyRequests: http.StatusTooManyRequests,
	domain.KindUnavailable:     http.StatusServiceUnavailable,
}

// toHTTP is the one place where domain errors become HTTP answers; anything else is left for the
// error handler to hide behind a 500. A request that ran out of time (its deadline, see
// requestContext) answers as busy: whoever still listens may retry.
func toHTTP(c *fiber.Ctx, err error) error {
	var de *domain.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		de = domain.ErrBusy
	case !errors.As(err, &de):
		return err
	}
	if de.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(de.RetryAfter.Seconds()))))
	}
	return web.NewError(statusOf[de.Kind], de.Message)
}
