package template

import (
	"encoding/json"
	"reflect"

	"github.com/invopop/jsonschema"
)

// durationPattern matches what Duration.UnmarshalText accepts, minus signs
// (negative durations are refused anyway).
const durationPattern = `^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// namePattern is sandbox.ValidateName's rule: a lowercase DNS label that
// starts with a letter and has no "--".
const namePattern = `^[a-z](-?[a-z0-9])*$`

// Schema returns the JSON Schema (draft 2020-12) of the template format, for
// editors. It is generated from the Go types; field descriptions come from
// their doc comments, captured in schema_comments.go because the built
// binary has no source to read them from.
func Schema() ([]byte, error) {
	r := &jsonschema.Reflector{
		Anonymous:      true,
		ExpandedStruct: true,
		CommentMap:     schemaComments,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[Duration]() {
				return &jsonschema.Schema{
					Type:        "string",
					Pattern:     durationPattern,
					Description: "A duration: a number and a unit, like 30s, 10m or 72h.",
				}
			}
			return nil
		},
	}
	s := r.Reflect(&Template{})
	s.Title = "Sandpit template (" + APIVersion + ")"
	constrainNames(s)
	return json.MarshalIndent(s, "", "  ")
}

func uintPtr(n int) *uint64 { u := uint64(n); return &u }

// constrainNames adds what the Go types cannot say: the rules for names
// and map keys, so editors flag a bad name as the user types it.
func constrainNames(s *jsonschema.Schema) {
	name := func(max int) *jsonschema.Schema {
		return &jsonschema.Schema{Pattern: namePattern, MaxLength: uintPtr(max)}
	}
	env := &jsonschema.Schema{Pattern: envNameRE.String()}
	prop := func(def *jsonschema.Schema, key string) *jsonschema.Schema {
		if def == nil || def.Properties == nil {
			return nil
		}
		p, _ := def.Properties.Get(key)
		return p
	}
	if p := prop(s, "name"); p != nil {
		p.Pattern, p.MaxLength = namePattern, uintPtr(MaxTemplateNameLength)
	}
	if p := prop(s, "env"); p != nil {
		p.PropertyNames = env
	}
	if p := prop(s, "services"); p != nil {
		p.PropertyNames = name(MaxServiceNameLength)
		p.MinProperties = uintPtr(1)
	}
	if p := prop(s, "dependencies"); p != nil {
		p.PropertyNames = name(MaxDependencyNameLength)
	}
	if p := prop(s, "endpoints"); p != nil {
		p.PropertyNames = name(MaxEndpointNameLength)
	}
	defs := s.Definitions
	if p := prop(defs["Service"], "env"); p != nil {
		p.PropertyNames = env
	}
	if p := prop(defs["Service"], "restart"); p != nil {
		p.Type = "string"
	}
	if p := prop(defs["Port"], "name"); p != nil {
		p.Pattern, p.MaxLength = namePattern, uintPtr(MaxPortNameLength)
	}
	if p := prop(defs["Route"], "path"); p != nil {
		p.Pattern = "^/"
	}
	if p := prop(defs["Route"], "to"); p != nil {
		p.Pattern = `^[a-z](-?[a-z0-9])*:[a-z](-?[a-z0-9])*$`
	}
	if p := prop(defs["HTTPProbe"], "path"); p != nil {
		p.Pattern = "^/"
	}
	if p := prop(defs["Dependency"], "version"); p != nil {
		p.Pattern = versionRE.String()
	}
	if p := prop(defs["Dependency"], "databases"); p != nil && p.Items != nil {
		p.Items.Pattern, p.Items.MaxLength = databaseRE.String(), uintPtr(maxDatabaseNameLength)
	}
	if p := prop(defs["Endpoint"], "routes"); p != nil {
		p.MinItems = uintPtr(1)
	}
	if p := prop(defs["Kubernetes"], "env"); p != nil {
		p.PropertyNames = env
	}
	if p := prop(defs["Kubernetes"], "config"); p != nil {
		p.PropertyNames = &jsonschema.Schema{Pattern: dnsSubdomainRE.String(), MaxLength: uintPtr(maxObjectNameLength)}
		if p.AdditionalProperties != nil {
			p.AdditionalProperties.PropertyNames = &jsonschema.Schema{Pattern: configKeyRE.String(), MaxLength: uintPtr(maxObjectNameLength)}
		}
	}
	if p := prop(defs["Helm"], "release"); p != nil {
		p.Pattern, p.MaxLength = dnsSubdomainRE.String(), uintPtr(maxReleaseNameLength)
	}
}
