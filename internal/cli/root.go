package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
)

// DefaultServer is the API address when SANDPIT_SERVER is unset.
const DefaultServer = "http://127.0.0.1:7700"

// DefaultDataDir is where `sandpit serve` keeps its state, and where the
// CLI looks for the admin token: SANDPIT_DATA_DIR, else /var/lib/sandpit
// for root, else $XDG_DATA_HOME/sandpit (~/.local/share/sandpit).
func DefaultDataDir() string { return defaultDataDir(os.Getenv) }

func defaultDataDir(getenv func(string) string) string {
	if d := getenv("SANDPIT_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/sandpit"
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sandpit")
	}
	home := getenv("HOME")
	if home == "" {
		return ".sandpit"
	}
	return filepath.Join(home, ".local", "share", "sandpit")
}

// Env is what commands need from their surroundings, so tests can run them
// in-process with their own streams and variables.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether a stream is an interactive terminal
	// (progress is drawn in place only then).
	IsTerminal func(io.Writer) bool
}

type app struct {
	env     Env
	server  string
	dataDir string
	client  *client.Client
	// tokenFile is the admin.token the token came from, or was looked for
	// in (tokenFound false); empty when it came from $SANDPIT_TOKEN.
	tokenFile  string
	tokenFound bool
}

// NewRoot returns the `sandpit` command with every client command. extra
// commands (serve, shim) are added by the binary.
func NewRoot(env Env, version string, extra ...*cobra.Command) *cobra.Command {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.IsTerminal == nil {
		env.IsTerminal = func(io.Writer) bool { return false }
	}
	a := &app{env: env}
	root := &cobra.Command{
		Use:   "sandpit",
		Short: "On-demand, production-like development and test environments",
		Long: `Sandpit launches sandboxes — every service and database of your product,
seeded and reachable at their own URLs — from a declarative template, for a
branch or a pull request, and removes them when they are no longer needed.

Start a server with 'sandpit serve', then:

  sandpit template apply -f examples/guestbook/sandpit.yaml
  sandpit create demo --template guestbook --wait
  curl http://app--demo.localhost:7701/
  sandpit logs demo api -f
  sandpit exec demo db -- psql -c 'select 1'
  sandpit delete demo --wait

The CLI talks to the server at $SANDPIT_SERVER (default ` + DefaultServer + `)
with the token in $SANDPIT_TOKEN, or else the one the server wrote to
admin.token in its data dir: --data-dir, $SANDPIT_DATA_DIR, or by default
/var/lib/sandpit for root and ~/.local/share/sandpit for other users.`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.PersistentFlags().StringVar(&a.server, "server", "", "API address (default $SANDPIT_SERVER or "+DefaultServer+")")
	root.PersistentFlags().StringVar(&a.dataDir, "data-dir", "", "server data dir to read the admin token from when $SANDPIT_TOKEN is unset")
	root.AddGroup(&cobra.Group{ID: "sandbox", Title: "Sandboxes:"}, &cobra.Group{ID: "template", Title: "Templates and data:"}, &cobra.Group{ID: "server", Title: "Server:"})
	for _, c := range []*cobra.Command{a.createCmd(), a.listCmd(), a.getCmd(), a.logsCmd(), a.execCmd(), a.eventsCmd(), a.suspendCmd(), a.resumeCmd(), a.extendCmd(), a.pinCmd(), a.unpinCmd(), a.deleteCmd(), a.renderCmd(), a.ciCmd(), a.usageCmd()} {
		c.GroupID = "sandbox"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.templateCmd(), a.snapshotCmd(), a.repoCmd()} {
		c.GroupID = "template"
		root.AddCommand(c)
	}
	for _, c := range extra {
		if !c.Hidden {
			c.GroupID = "server"
		}
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("server")
	root.SetCompletionCommandGroupID("server")
	a.explainErrors(root)
	return root
}

// explainErrors makes every command's errors go through explain.
func (a *app) explainErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error { return a.explain(run(cmd, args)) }
	}
	for _, sub := range c.Commands() {
		a.explainErrors(sub)
	}
}

// explain adds what only the CLI knows to the server's answers: for a
// refused token, where the token came from.
func (a *app) explain(err error) error {
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		return err
	}
	switch {
	case a.tokenFile == "":
		ae.Hint = "$SANDPIT_TOKEN is not this server's token: use the one in admin.token in the server's data dir, e.g. export SANDPIT_TOKEN=$(cat /var/lib/sandpit/admin.token)"
	case a.tokenFound:
		ae.Hint = fmt.Sprintf("the token in %s is not this server's: point --data-dir (or $SANDPIT_DATA_DIR) at the data dir of the server at %s, or export SANDPIT_TOKEN", a.tokenFile, a.client.BaseURL())
	default:
		ae.Hint = fmt.Sprintf("$SANDPIT_TOKEN is unset and there is no %s: export SANDPIT_TOKEN with the content of admin.token in the server's data dir, or point --data-dir (or $SANDPIT_DATA_DIR) at that dir", a.tokenFile)
	}
	return err
}

// connect builds the API client from flags and environment.
func (a *app) connect() (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	server := a.server
	if server == "" {
		server = a.env.Getenv("SANDPIT_SERVER")
	}
	if server == "" {
		server = DefaultServer
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	c, err := client.New(server, token)
	if err != nil {
		return nil, err
	}
	if ca := a.env.Getenv("SANDPIT_CA_FILE"); ca != "" {
		if err := c.TrustCAFile(ca); err != nil {
			return nil, err
		}
	}
	a.client = c
	return c, nil
}

func (a *app) token() (string, error) {
	if t := strings.TrimSpace(a.env.Getenv("SANDPIT_TOKEN")); t != "" {
		return t, nil
	}
	dir := a.dataDir
	if dir == "" {
		dir = a.env.Getenv("SANDPIT_DATA_DIR")
	}
	if dir == "" {
		dir = defaultDataDir(a.env.Getenv)
	}
	path := filepath.Join(dir, "admin.token")
	a.tokenFile = path
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		a.tokenFound = true
		return strings.TrimSpace(string(b)), nil
	case errors.Is(err, os.ErrPermission):
		return "", fmt.Errorf("cannot read the admin token %s (permission denied): export SANDPIT_TOKEN with its content, e.g. export SANDPIT_TOKEN=$(sudo cat %s)", path, path)
	case errors.Is(err, os.ErrNotExist):
		// Let the server answer: it says "unauthorized" with a hint, or
		// the connection fails with a hint about starting it.
		return "", nil
	default:
		return "", fmt.Errorf("read admin token: %w", err)
	}
}

// Execute runs the root command and returns the process exit code.
func Execute(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "Error:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "Error:", err)
	if isUsage(err) {
		if cmd != nil && cmd != root {
			fmt.Fprintf(stderr, "Usage: %s\nRun '%s --help' for more.\n", cmd.UseLine(), cmd.CommandPath())
		} else {
			fmt.Fprintln(stderr, "Run 'sandpit --help' for usage.")
		}
		return 2
	}
	return 1
}

// exitError ends a command with a specific exit code (a failed sandbox, or
// an exec'd command's own code).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

func isUsage(err error) bool {
	// The server's answers can quote anything (a name, a template's
	// text); they are never usage mistakes.
	var ae *client.Error
	if errors.As(err, &ae) {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires exactly", "required flag", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
