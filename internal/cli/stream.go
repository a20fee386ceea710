package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
)

func printCompactJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (a *app) logsCmd() *cobra.Command {
	var follow, timestamps bool
	var tail int
	var output string
	c := &cobra.Command{
		Use:   "logs NAME [SERVICE]",
		Short: "Show the output of a sandbox's services and dependencies",
		Long: `Show the output of a sandbox's services and dependencies (all of them, or
one), including their build and init output, in time order.

  sandpit logs demo            everything
  sandpit logs demo api -f     follow one service
  sandpit logs demo db --tail 50`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			opts := client.LogOptions{Follow: follow, Tail: tail}
			if len(args) == 2 {
				opts.Service = args[1]
			}
			width := 0
			if opts.Service == "" && output == "text" {
				// Pad the service prefix to the longest name, so lines
				// line up from the first one.
				sb, err := c.GetSandbox(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				for _, s := range sb.Status.Services {
					width = max(width, len(s.Name))
				}
				for _, d := range sb.Status.Dependencies {
					width = max(width, len(d.Name))
				}
			}
			return c.Logs(cmd.Context(), args[0], opts, func(l client.LogLine) error {
				if output == "json" {
					return printCompactJSON(a.env.Stdout, l)
				}
				prefix := ""
				if opts.Service == "" {
					width = max(width, len(l.Service))
					prefix = fmt.Sprintf("%-*s | ", width, l.Service)
				}
				if timestamps {
					prefix = l.Time.Local().Format("15:04:05.000 ") + prefix
				}
				if l.Stream != "stdout" && l.Stream != "stderr" {
					prefix += "[" + l.Stream + "] "
				}
				_, err := fmt.Fprintf(a.env.Stdout, "%s%s\n", prefix, l.Text)
				return err
			})
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines (Ctrl-C to stop)")
	c.Flags().IntVar(&tail, "tail", 0, "only the last N lines of history")
	c.Flags().BoolVarP(&timestamps, "timestamps", "T", false, "prefix each line with its time")
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (one object per line)")
	return c
}

func (a *app) execCmd() *cobra.Command {
	var stdin bool
	c := &cobra.Command{
		Use:   "exec NAME SERVICE -- COMMAND [ARG...]",
		Short: "Run a command in a service's environment (its checkout, env and user)",
		Long: `Run a command in a service's environment: its working directory, its env
(the same DATABASE_URL, ports and URLs the service sees) and its user. For a
postgres dependency, PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE are set,
so psql connects to the sandbox's database. The command's exit code becomes
sandpit's.

  sandpit exec demo api -- ls -la
  sandpit exec demo db -- psql -d guestbook -c 'select count(*) from entries'
  cat seed.sql | sandpit exec -i demo db -- psql -d guestbook`,
		Args: cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 2 {
				return fmt.Errorf("invalid argument: put the command after --, as in sandpit exec NAME SERVICE -- COMMAND")
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			stdio := client.ExecIO{Stdout: a.env.Stdout, Stderr: a.env.Stderr}
			if stdin {
				stdio.Stdin = a.env.Stdin
			}
			code, err := c.Exec(cmd.Context(), args[0], client.ExecRequest{Service: args[1], Command: args[2:]}, stdio)
			if err != nil {
				var ae *client.Error
				if errors.As(err, &ae) {
					return err
				}
				if code > 0 {
					// The command could not run (127: not found); keep
					// the shell's code, so scripts can tell.
					return &exitError{code: code, msg: err.Error()}
				}
				return fmt.Errorf("exec: %w", err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&stdin, "stdin", "i", false, "pass standard input to the command")
	return c
}
