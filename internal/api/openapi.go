package api

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/invopop/jsonschema"

	"sandpit.dev/sandpit/client"
)

var (
	openapiOnce sync.Once
	openapiDoc  map[string]any
)

// openapi serves an OpenAPI 3.1 document built from the route table and the
// wire types, so it always describes what this binary serves.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	openapiOnce.Do(func() { openapiDoc = s.buildOpenAPI() })
	writeJSON(w, http.StatusOK, openapiDoc)
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

func (s *Server) buildOpenAPI() map[string]any {
	ref := &jsonschema.Reflector{ExpandedStruct: false, DoNotReference: false, Anonymous: true, AllowAdditionalProperties: false}
	schemas := map[string]any{}
	schemaOf := func(v any) map[string]any {
		if v == nil {
			return nil
		}
		sc := ref.Reflect(v)
		for name, def := range sc.Definitions {
			schemas[name] = def
		}
		name := reflect.TypeOf(v).Name()
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	schemaOf(client.ErrorBody{})
	paths := map[string]map[string]any{}
	for _, rt := range s.table() {
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt.method, rt.path),
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != nil {
			ct := "application/json"
			if rt.stream == "application/vnd.sandpit.exec-stream" {
				ct = rt.stream
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{ct: map[string]any{"schema": schemaOf(rt.request)}}}
		}
		content := map[string]any{}
		if rt.response != nil {
			content["application/json"] = map[string]any{"schema": schemaOf(rt.response)}
		}
		if rt.stream != "" {
			content[rt.stream] = map[string]any{}
		}
		responses := map[string]any{
			"200":     map[string]any{"description": "OK", "content": content},
			"default": map[string]any{"description": "An error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorBody"}}}},
		}
		op["responses"] = responses
		if !rt.public {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Sandpit API",
			"version":     s.cfg.Version,
			"description": "On-demand development and test environments. Authenticate with the admin token: Authorization: Bearer <token>.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

func operationID(method, path string) string {
	parts := []string{strings.ToLower(method)}
	for _, p := range strings.Split(strings.Trim(path, "/"), "/") {
		if p == "api" || p == "v1" || p == "" {
			continue
		}
		p = strings.Trim(p, "{}")
		p = strings.NewReplacer(".", "_", "-", "_").Replace(p)
		parts = append(parts, p)
	}
	return strings.Join(parts, "_")
}
