package cli_test

import (
	"encoding/json"
	"os"
	"testing"

	"sandpit.dev/sandpit/internal/testenv"
)

func TestTemplateCommands(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	e := stackEnv(s)
	sc := scrubber(s)
	shop, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	stdin := e
	stdin.stdin = string(shop)

	steps := []struct {
		name string
		env  env
		args []string
		want int
	}{
		{"list_empty", e, []string{"template", "list"}, 0},
		{"apply_dry_run_new", e, []string{"template", "apply", "-f", "testdata/shop.yaml", "--dry-run"}, 0},
		{"apply", e, []string{"template", "apply", "-f", "testdata/shop.yaml"}, 0},
		{"apply_unchanged", e, []string{"template", "apply", "-f", "testdata/shop.yaml"}, 0},
		{"apply_stdin_unchanged", stdin, []string{"template", "apply", "-f", "-"}, 0},
		{"apply_dry_run_unchanged", e, []string{"template", "apply", "-f", "testdata/shop.yaml", "--dry-run"}, 0},
		{"apply_dry_run_changed", e, []string{"template", "apply", "-f", "testdata/shop-v2.yaml", "--dry-run"}, 0},
		{"apply_changed_json", e, []string{"template", "apply", "-f", "testdata/shop-v2.yaml", "-o", "json"}, 0},
		{"apply_invalid", e, []string{"template", "apply", "-f", "testdata/invalid.yaml"}, 1},
		{"apply_invalid_stdin", env{vars: e.vars, stdin: "apiVersion: sandpit/v1\nname: x\nservices:\n  api: {run: [1]}\n"}, []string{"template", "apply", "-f", "-"}, 1},
		{"apply_missing_file", e, []string{"template", "apply", "-f", "testdata/nope.yaml"}, 1},
		{"list", e, []string{"template", "list"}, 0},
		{"list_yaml", e, []string{"template", "list", "-o", "yaml"}, 0},
		{"get", e, []string{"template", "get", "shop"}, 0},
		{"get_version", e, []string{"template", "get", "shop", "--version", "1"}, 0},
		{"get_missing_version", e, []string{"template", "get", "shop", "--version", "3"}, 1},
		{"get_unknown", e, []string{"template", "get", "nope"}, 1},
		{"versions", e, []string{"template", "versions", "shop"}, 0},
		{"versions_unknown", e, []string{"template", "versions", "nope"}, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			expect(t, "template/"+st.name, sc, st.want, st.env.sandpit(t, st.args...))
		})
	}
	t.Run("get_json", func(t *testing.T) {
		r := e.sandpit(t, "template", "get", "shop", "-o", "json")
		out, err := sc.JSON([]byte(r.stdout))
		if err != nil {
			t.Fatal(err)
		}
		r.stdout = string(out)
		expect(t, "template/get_json", sc, 0, r)
	})
	t.Run("schema", func(t *testing.T) {
		r := e.sandpit(t, "template", "schema")
		var schema map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &schema); err != nil || r.code != 0 || r.stderr != "" {
			t.Fatalf("template schema: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if _, ok := schema["$schema"].(string); !ok {
			t.Errorf("the schema has no $schema")
		}
	})
}
