// Command fastproxy is the gateway benchmark's floor: a reverse proxy with nothing but fasthttp, the
// HTTP engine under Fiber and so under the gateway. No routing, authentication, header hygiene,
// tracing or logging: every request goes as it came to the upstream over a pooled keep-alive
// connection. Its row tells what the gateway's own work costs (gateway against fastproxy) apart from
// what Go's network runtime costs on the machine (fastproxy against nginx).
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := flag.String("upstream", "", "host:port of the upstream")
	flag.Parse()

	upstreamClient := &fasthttp.HostClient{Addr: *upstream, MaxConns: 1024}
	proxy := func(ctx *fasthttp.RequestCtx) {
		if err := upstreamClient.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error(err.Error(), http.StatusBadGateway)
		}
	}
	log.Fatal(fasthttp.ListenAndServe(*listen, proxy))
}
