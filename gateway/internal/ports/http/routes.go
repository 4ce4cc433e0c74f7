package http

import (
	"github.com/gofiber/fiber/v2"

	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	"limen/libs/authn"
)

// Routes are the parts of the public app beside the use cases.
type Routes struct {
	Verifier *authn.Verifier
	Proxy    *Proxy
	// VMStatus is nil without the live status socket.
	VMStatus *VMStatus
	// APIDocs is nil without the API document.
	APIDocs *APIDocs
}

// Mount adds the gateway's routes; anything else (including /internal) is a 404. The gateway's own
// routes (domain.UpstreamGateway) come before the proxy's catch-all.
func Mount(router fiber.Router, application app.Application, r Routes) {
	router.Get(domain.HealthPath, HealthHandler(application))
	if r.APIDocs != nil {
		router.Get(domain.OpenAPIPath, r.APIDocs.Document)
		router.Get(domain.DocsPath, r.APIDocs.Page)
		router.Get(domain.DocsPath+"/:file", r.APIDocs.File)
	}
	if r.VMStatus != nil {
		// The proxy cannot carry a WebSocket upgrade; the gateway terminates the socket itself.
		router.Get(VMStatusPath, r.VMStatus.CheckOrigin, Authenticate(Authentication{Verifier: r.Verifier, QueryToken: true}),
			r.VMStatus.Accept, r.VMStatus.Upgrade())
	}
	router.All("/api/*", r.Proxy.Route, Authenticate(Authentication{Verifier: r.Verifier, Open: tokenOptional}), r.Proxy.Forward)
}
