package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"

	"github.com/gofiber/fiber/v2"
	swaggerui "github.com/swaggo/files/v2"
	"go.yaml.in/yaml/v3"

	"limen/gateway/internal/domain"
	"limen/libs/web"
)

// APIDocs serves the API document to anyone: as JSON at domain.OpenAPIPath, and at domain.DocsPath
// as a page that presents it with Swagger UI. The gateway serves the page's files itself, so the
// page works where nothing outside is reachable.
type APIDocs struct {
	document []byte
	page     []byte
	files    map[string]docsFile
}

type docsFile struct {
	contentType string
	body        []byte
}

// docsFiles are the Swagger UI files the page loads, and startScript, which starts it on the document.
var docsFiles = map[string]string{
	"swagger-ui.css":       "text/css; charset=utf-8",
	"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}

const startScript = "start.js"

var pageTemplate = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" href="{{.Files}}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{{.Files}}/swagger-ui-bundle.js"></script>
<script src="{{.Files}}/` + startScript + `"></script>
</body>
</html>
`))

// NewAPIDocs reads the OpenAPI document (YAML) once, into the JSON it is served as.
func NewAPIDocs(openAPI []byte) (*APIDocs, error) {
	var root, more yaml.Node
	in := yaml.NewDecoder(bytes.NewReader(openAPI))
	if err := in.Decode(&root); err != nil {
		return nil, fmt.Errorf("API document: %w", err)
	}
	switch err := in.Decode(&more); {
	case err == nil:
		return nil, errors.New("API document: more than one YAML document")
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("API document: %w", err)
	}
	var document bytes.Buffer
	if err := writeJSON(&document, &root); err != nil {
		return nil, fmt.Errorf("API document: %w", err)
	}
	var head struct {
		Info struct {
			Title string `json:"title"`
		} `json:"info"`
	}
	if err := json.Unmarshal(document.Bytes(), &head); err != nil {
		return nil, fmt.Errorf("API document: %w", err)
	}
	var page bytes.Buffer
	if err := pageTemplate.Execute(&page, map[string]string{"Title": head.Info.Title, "Files": domain.DocsPath}); err != nil {
		return nil, err
	}
	start := fmt.Sprintf("window.ui = SwaggerUIBundle({url: %q, dom_id: \"#swagger-ui\"});\n", domain.OpenAPIPath)
	files := map[string]docsFile{startScript: {contentType: "text/javascript; charset=utf-8", body: []byte(start)}}
	for name, contentType := range docsFiles {
		body, err := fs.ReadFile(swaggerui.FS, name)
		if err != nil {
			return nil, fmt.Errorf("Swagger UI: %w", err)
		}
		files[name] = docsFile{contentType: contentType, body: body}
	}
	return &APIDocs{document: document.Bytes(), page: page.Bytes(), files: files}, nil
}

// Document answers the API document as JSON.
func (d *APIDocs) Document(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(d.document)
}

// Page answers the page that presents the document.
func (d *APIDocs) Page(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(d.page)
}

// File answers one of the files the page loads (route parameter "file").
func (d *APIDocs) File(c *fiber.Ctx) error {
	file, ok := d.files[c.Params("file")]
	if !ok {
		return web.NewError(http.StatusNotFound, "Not found")
	}
	c.Set(fiber.HeaderContentType, file.contentType)
	// They change only with the gateway; an hour spares a reader most downloads of the 1.4 MB bundle.
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(file.body)
}

// writeJSON writes a YAML node as JSON, keeping the order of mapping keys (a reader finds the paths
// in the order the document lists them). A key YAML reads as another type (an unquoted status code,
// say) is its text.
func writeJSON(out *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("an empty YAML document")
		}
		return writeJSON(out, n.Content[0])
	case yaml.AliasNode:
		return writeJSON(out, n.Alias)
	case yaml.SequenceNode:
		out.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				out.WriteByte(',')
			}
			if err := writeJSON(out, item); err != nil {
				return err
			}
		}
		out.WriteByte(']')
		return nil
	case yaml.MappingNode:
		out.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if key.Kind != yaml.ScalarNode || key.Tag == "!!merge" {
				return fmt.Errorf("line %d: only plain keys have a JSON form", key.Line)
			}
			if i > 0 {
				out.WriteByte(',')
			}
			name, _ := json.Marshal(key.Value)
			out.Write(name)
			out.WriteByte(':')
			if err := writeJSON(out, value); err != nil {
				return err
			}
		}
		out.WriteByte('}')
		return nil
	case yaml.ScalarNode:
		var value any
		if err := n.Decode(&value); err != nil {
			return err
		}
		scalar, err := json.Marshal(value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		out.Write(scalar)
		return nil
	}
	return fmt.Errorf("line %d: unknown YAML node", n.Line)
}
