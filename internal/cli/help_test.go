package cli_test

import (
	"strings"
	"testing"
)

// TestHelp pins every command's help: it is what teaches people the CLI.
func TestHelp(t *testing.T) {
	t.Parallel()
	// No server is needed, nor may one be contacted.
	e := env{vars: map[string]string{"SANDPIT_SERVER": "http://127.0.0.1:1"}}
	for _, cmd := range [][]string{
		{}, {"create"}, {"list"}, {"get"}, {"logs"}, {"exec"}, {"events"}, {"delete"},
		{"suspend"}, {"resume"}, {"extend"}, {"pin"}, {"unpin"}, {"ci"}, {"ci", "run"},
		{"template"}, {"template", "apply"}, {"template", "list"}, {"template", "get"},
		{"template", "versions"}, {"template", "schema"},
		{"snapshot"}, {"snapshot", "create"}, {"snapshot", "import"}, {"snapshot", "list"},
		{"snapshot", "get"}, {"snapshot", "delete"}, {"snapshot", "restore"},
		{"usage"},
	} {
		name := "help/" + strings.Join(append([]string{"sandpit"}, cmd...), "_")
		t.Run(name, func(t *testing.T) {
			expect(t, name, nil, 0, e.sandpit(t, append(cmd, "--help")...))
		})
	}
	t.Run("no_arguments", func(t *testing.T) {
		// Bare sandpit shows the same help.
		r := e.sandpit(t)
		want := e.sandpit(t, "--help")
		if r.code != 0 || r.stdout != want.stdout {
			t.Errorf("sandpit without arguments: exit %d\n%s", r.code, r.stdout)
		}
	})
	t.Run("version", func(t *testing.T) {
		expect(t, "help/version", nil, 0, e.sandpit(t, "--version"))
	})
}

// TestUsageErrors covers mistakes on the command line: exit 2, a message
// that says what is wrong, and where to read more.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	e := env{vars: map[string]string{"SANDPIT_SERVER": "http://127.0.0.1:1"}}
	for name, args := range map[string][]string{
		"unknown_command":          {"lsit"},
		"unknown_flag":             {"list", "--colour"},
		"missing_argument":         {"get"},
		"extra_argument":           {"get", "a", "b"},
		"create_no_template":       {"create", "demo"},
		"create_bad_set":           {"create", "demo", "--template", "shop", "--set", "LOG_LEVEL"},
		"create_bad_output":        {"create", "demo", "--template", "shop", "-o", "xml"},
		"list_bad_output":          {"list", "-o", "wide"},
		"exec_no_dash":             {"exec", "demo", "api", "ls"},
		"exec_no_command":          {"exec", "demo", "api", "--"},
		"apply_no_file":            {"template", "apply"},
		"logs_bad_output":          {"logs", "demo", "-o", "yaml"},
		"template_get_output":      {"template", "get", "shop", "-o", "table"},
		"snapshot_create_no_from":  {"snapshot", "create", "x"},
		"snapshot_create_bad_from": {"snapshot", "create", "x", "--from", "demo"},
		"snapshot_import_no_type":  {"snapshot", "import", "x", "--file", "f"},
		"snapshot_import_no_file":  {"snapshot", "import", "x", "--type", "postgres"},
		"snapshot_restore_no_to":   {"snapshot", "restore", "x"},
		"snapshot_list_bad_output": {"snapshot", "list", "-o", "xml"},
		"create_negative_ttl":      {"create", "demo", "--template", "shop", "--ttl", "-1h"},
		"create_bad_idle_suspend":  {"create", "demo", "--template", "shop", "--idle-suspend", "30"},
		"extend_no_duration":       {"extend", "demo"},
		"extend_bad_duration":      {"extend", "demo", "tomorrow"},
		"extend_zero_duration":     {"extend", "demo", "0"},
		"suspend_bad_output":       {"suspend", "demo", "-o", "xml"},
		"pin_extra_argument":       {"pin", "a", "b"},
		"ci_run_no_dash":           {"ci", "run", "-t", "shop", "make"},
		"ci_run_no_command":        {"ci", "run", "-t", "shop", "--"},
		"ci_run_no_template":       {"ci", "run", "--", "make"},
		"ci_run_bad_name":          {"ci", "run", "-t", "shop", "--name", "Bad_Name", "--", "make"},
		"ci_run_negative_keep":     {"ci", "run", "-t", "shop", "--keep-on-failure", "-1h", "--", "make"},
		"usage_bad_days":           {"usage", "--days", "0"},
		"usage_too_many_days":      {"usage", "--days", "365"},
	} {
		t.Run(name, func(t *testing.T) {
			expect(t, "usage/"+name, nil, 2, e.sandpit(t, args...))
		})
	}
}
