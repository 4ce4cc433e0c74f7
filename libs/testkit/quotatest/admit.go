// Package quotatest stands in for quota-service's internal API (libs/contract's reservation routes)
// where a test or a benchmark needs a vm-service whose growth is never refused.
package quotatest

import (
	"net/http"
	"strings"

	"limen/libs/contract"
)

// AdmitEverything answers every reservation at once with 201, every commit and release with 200 and a
// VM's release with 204, for callers presenting internalToken (others: 401). It keeps no state: what it
// measures or tests is vm-service without quota-service's work on its path.
func AdmitEverything(internalToken string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer "+internalToken:
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == contract.InternalReservationsRoute:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{}`))
		case strings.HasPrefix(r.URL.Path, contract.InternalReservationsRoute+"/"):
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
}
