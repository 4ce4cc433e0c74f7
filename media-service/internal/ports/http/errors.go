package http

import (
	"errors"
	"net/http"

	"limen/libs/web"
	"limen/media-service/internal/domain"
)

var statusOf = map[domain.Kind]int{
	domain.KindInvalid:     http.StatusBadRequest,
	domain.KindNotFound:    http.StatusNotFound,
	domain.KindConflict:    http.StatusConflict,
	domain.KindTooLarge:    http.StatusRequestEntityTooLarge,
	domain.KindUnavailable: http.StatusServiceUnavailable,
}

// toHTTP is the one place where domain errors become HTTP answers; anything else is left for the
// error handler to hide behind a 500.
func toHTTP(err error) error {
	var de *domain.Error
	if !errors.As(err, &de) {
		return err
	}
	return web.NewError(statusOf[de.Kind], de.Message)
}
