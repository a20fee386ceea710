package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"go.yaml.in/yaml/v3"
	"sandpit.dev/sandpit/client"
)

// outputFlag adds -o to a read command.
func outputFlag(c *cobra.Command, p *string, formats string) {
	c.Flags().StringVarP(p, "output", "o", "table", "output format: "+formats)
}

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return fmt.Errorf("invalid argument %q for -o: use one of %s", o, strings.Join(allowed, ", "))
}

// printData writes v as JSON or YAML (YAML keeps JSON's field names and
// order, since it is converted from the JSON).
func printData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "json" {
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

func blockStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
		n.Style &^= yaml.DoubleQuotedStyle // the encoder quotes where needed
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(&trimWriter{w: w}, 0, 4, 3, ' ', 0)
}

// trimWriter drops the padding tabwriter leaves at the end of a line whose
// last cells are empty. Tables write whole lines, so nothing is held back.
type trimWriter struct {
	w    io.Writer
	line []byte
}

func (t *trimWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c != '\n' {
			t.line = append(t.line, c)
			continue
		}
		t.line = append(bytes.TrimRight(t.line, " "), '\n')
		if _, err := t.w.Write(t.line); err != nil {
			return 0, err
		}
		t.line = t.line[:0]
	}
	return len(p), nil
}

// age formats a duration the way kubectl does: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// dur formats a measured duration compactly: 850ms, 3.2s, 1m05s.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		m := int(d.Minutes())
		return fmt.Sprintf("%dm%02ds", m, int(d.Seconds())-60*m)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readCommand turns c into a read command with -o table|json|yaml: it
// checks the format, connects, fetches, and prints the data as JSON or
// YAML, or hands it to table for people.
func readCommand[T any](a *app, c *cobra.Command, fetch func(ctx context.Context, cl *client.Client, args []string) (T, error), table func(T) error) *cobra.Command {
	var output string
	outputFlag(c, &output, "table, json, yaml")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(output, "table", "json", "yaml"); err != nil {
			return err
		}
		cl, err := a.connect()
		if err != nil {
			return err
		}
		v, err := fetch(cmd.Context(), cl, args)
		if err != nil {
			return err
		}
		if output != "table" {
			return printData(a.env.Stdout, output, v)
		}
		return table(v)
	}
	return c
}
