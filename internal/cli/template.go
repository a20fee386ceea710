package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/template"
)

func (a *app) templateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "template",
		Short: "Apply, list and inspect templates",
		Long: `Templates (apiVersion: sandpit/v1, YAML) declare a sandbox: its source,
services, dependencies, endpoints and env. Applying a changed template makes a
new version; sandboxes keep the version they were created from.

  sandpit template apply -f sandpit.yaml     validate and store
  sandpit template apply -f sandpit.yaml --dry-run
  sandpit template list
  sandpit template get guestbook            show the YAML as applied
  sandpit template versions guestbook
  sandpit template schema > sandpit.schema.json   for editor completion`,
	}
	c.AddCommand(a.templateApplyCmd(), a.templateListCmd(), a.templateGetCmd(), a.templateVersionsCmd(), templateSchemaCmd())
	return c
}

func (a *app) templateApplyCmd() *cobra.Command {
	var file, output string
	var dryRun bool
	c := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Validate a template and store it as a new version if it changed",
		Long: `Validate a template and store it as a new version if it changed.

Errors name file:line:column. A relative source.path is resolved against the
file's directory, on the server host (so run the server on this machine to use
local paths). Use -f - to read standard input (paths then resolve against the
current directory).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			if file == "" {
				return fmt.Errorf("required flag \"file\" not set: sandpit template apply -f FILE")
			}
			var src []byte
			var err error
			name, base := file, ""
			if file == "-" {
				src, err = io.ReadAll(a.env.Stdin)
				name = "<stdin>"
				base, _ = os.Getwd()
			} else {
				src, err = os.ReadFile(file)
				if abs, aerr := filepath.Abs(file); aerr == nil {
					base = filepath.Dir(abs)
				}
			}
			if err != nil {
				return fmt.Errorf("read template: %w", err)
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			res, err := c.ApplyTemplate(cmd.Context(), client.ApplyTemplateRequest{Filename: name, BaseDir: base, Source: string(src), DryRun: dryRun})
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(a.env.Stderr, "warning: %s\n", w)
			}
			if output != "table" {
				return printData(a.env.Stdout, output, res)
			}
			t := res.Template
			switch {
			case dryRun && res.Created:
				fmt.Fprintf(a.env.Stdout, "template %s is valid (would be stored as version %d)\n", t.Name, t.Version)
			case dryRun:
				fmt.Fprintf(a.env.Stdout, "template %s is valid and unchanged (version %d)\n", t.Name, t.Version)
			case res.Created:
				fmt.Fprintf(a.env.Stdout, "template %s version %d applied\n", t.Name, t.Version)
			default:
				fmt.Fprintf(a.env.Stdout, "template %s unchanged (version %d)\n", t.Name, t.Version)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "template file (- for standard input)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "validate only; store nothing")
	outputFlag(c, &output, "table, json, yaml")
	return c
}

func (a *app) templateListCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List templates (latest version of each)",
		Args:    cobra.NoArgs,
	}, func(ctx context.Context, cl *client.Client, _ []string) (client.TemplateList, error) {
		items, err := cl.ListTemplates(ctx)
		return client.TemplateList{Items: items}, err
	}, func(l client.TemplateList) error {
		if len(l.Items) == 0 {
			// Stdout stays empty, for scripts; the hint is for people.
			fmt.Fprintln(a.env.Stderr, "no templates: add one with sandpit template apply -f FILE")
			return nil
		}
		return printTemplates(a.env.Stdout, l.Items)
	})
}

func printTemplates(w io.Writer, items []client.TemplateInfo) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tVERSION\tSERVICES\tDEPENDENCIES\tENDPOINTS\tAPPLIED")
	for _, t := range items {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", t.Name, t.Version, orDash(strings.Join(t.Services, ",")),
			orDash(strings.Join(t.Dependencies, ",")), orDash(strings.Join(t.Endpoints, ",")), t.CreatedAt.Local().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func (a *app) templateGetCmd() *cobra.Command {
	var output string
	var version int
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a template version as applied (the latest by default)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "yaml", "json"); err != nil {
				return err
			}
			c, err := a.connect()
			if err != nil {
				return err
			}
			t, err := c.GetTemplate(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			if output == "json" {
				return printData(a.env.Stdout, "json", t)
			}
			fmt.Fprintf(a.env.Stderr, "# template %s version %d, applied %s from %s\n", t.Name, t.Version, t.CreatedAt.Local().Format("2006-01-02 15:04:05"), t.Filename)
			_, err = io.WriteString(a.env.Stdout, t.Source)
			return err
		},
	}
	c.Flags().IntVar(&version, "version", 0, "version to show (default: the latest)")
	c.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml (the source as applied) or json (with metadata)")
	return c
}

func (a *app) templateVersionsCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:   "versions NAME",
		Short: "List every version of a template",
		Args:  cobra.ExactArgs(1),
	}, func(ctx context.Context, cl *client.Client, args []string) (client.TemplateList, error) {
		items, err := cl.ListTemplateVersions(ctx, args[0])
		return client.TemplateList{Items: items}, err
	}, func(l client.TemplateList) error {
		tw := newTable(a.env.Stdout)
		fmt.Fprintln(tw, "VERSION\tDIGEST\tFILE\tAPPLIED")
		for _, t := range l.Items {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", t.Version, t.Digest[:12], t.Filename, t.CreatedAt.Local().Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	})
}

func templateSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the template format (for editors)",
		Long: `Print the JSON Schema of the template format (sandpit/v1), generated from
the same Go types the server decodes. Point your editor's YAML language server
at it, e.g. with a first line "# yaml-language-server: $schema=./sandpit.schema.json".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := template.Schema()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(append(b, '\n'))
			return err
		},
	}
}
