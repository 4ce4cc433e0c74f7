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
	// Console is nil without the console socket and page.
	Console *Console
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
	if r.Console != nil {
		// The ticket in ?token= is the socket's only credential (vm-service redeems it).
		router.Get(ConsoleSocketPath, r.Console.Open, r.Console.Upgrade())
		router.Get(ConsoleAssetsPath+"/*", ConsoleAsset)
		router.Get(ConsolePagePath, ConsolePage)
	}
	router.All("/api/*", r.Proxy.Handler(Authentication{Verifier: r.Verifier}))
}
