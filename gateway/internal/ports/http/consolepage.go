package http

import (
	"embed"
	"mime"
	"net/http"
	"path"

	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
)

// The console page: /console/{ref} shows a VM's screen with noVNC, for users without the frontend.
// Its script and noVNC (the npm package @novnc/novnc, embedded as it is; console/update-novnc.sh
// replaces it) are under ConsoleAssetsPath.
const (
	ConsolePagePath   = "/console/:ref"
	ConsoleAssetsPath = "/console/assets"
)

//go:embed console/index.html console/console.js console/novnc
var consoleFiles embed.FS

// consolePolicy lets the page run its own scripts and open the console socket of its own host, and
// nothing else.
const consolePolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"

// ConsolePage answers the page.
func ConsolePage(c *fiber.Ctx) error {
	page, err := consoleFiles.ReadFile("console/index.html")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderContentSecurityPolicy, consolePolicy)
	return c.Send(page)
}

// ConsoleAsset answers one of the files the page loads (the route's wildcard).
func ConsoleAsset(c *fiber.Ctx) error {
	name := path.Clean("/" + c.Params("*"))
	body, err := consoleFiles.ReadFile("console" + name)
	if err != nil || name == "/index.html" {
		return web.NewError(http.StatusNotFound, "Not found")
	}
	contentType := mime.TypeByExtension(path.Ext(name))
	if contentType == "" {
		contentType = fiber.MIMETextPlainCharsetUTF8
	}
	c.Set(fiber.HeaderContentType, contentType)
	// They change only with the gateway.
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(body)
}
