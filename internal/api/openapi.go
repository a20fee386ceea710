package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"

	"sandpit.dev/sandpit/client"
)

// openapi serves an OpenAPI 3.1 document built from the route table and the
// wire types, so it always describes what this binary serves.
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	s.openapiOnce.Do(func() { s.openapiDoc = s.buildOpenAPI() })
	writeJSON(w, http.StatusOK, s.openapiDoc)
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
		for _, q := range rt.query {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.desc, "schema": map[string]any{"type": q.typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.requestBinary != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{rt.requestBinary: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
		}
		if rt.request != nil {
			ct := "application/json"
			if rt.stream == client.ExecContentType {
				ct = rt.stream
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{ct: map[string]any{"schema": schemaOf(rt.request)}}}
		}
		content := map[string]any{}
		if rt.response != nil {
			content["application/json"] = map[string]any{"schema": schemaOf(rt.response)}
		}
		if rt.stream != "" {
			media := map[string]any{}
			if rt.streamItem != nil {
				media["schema"] = schemaOf(rt.streamItem)
			}
			content[rt.stream] = media
		}
		responses := map[string]any{
			"default": map[string]any{"description": "An error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorBody"}}}},
		}
		statuses := rt.status
		if len(statuses) == 0 {
			statuses = []int{http.StatusOK}
		}
		for _, code := range statuses {
			responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": content}
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
			// The reflector points references at its own "#/$defs/";
			// here the definitions live in components/schemas.
			"schemas":         componentSchemas(schemas),
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

// componentSchemas returns the reflected definitions with their references
// moved from "#/$defs/NAME" to "#/components/schemas/NAME".
func componentSchemas(schemas map[string]any) map[string]any {
	b, err := json.Marshal(schemas)
	if err != nil {
		panic("openapi: encode schemas: " + err.Error())
	}
	b = bytes.ReplaceAll(b, []byte(`"#/$defs/`), []byte(`"#/components/schemas/`))
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic("openapi: decode schemas: " + err.Error())
	}
	return out
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
