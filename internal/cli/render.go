package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) renderCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "render NAME",
		Short: "Print the Kubernetes objects a sandbox is made of, for review",
		Long: `Print, as multi-document YAML, the objects the kubernetes runtime applies for
a sandbox: the team's manifests, kustomization or Helm chart from
kubernetes.* in the template, plus what the template generates for its
services and dependencies, after the sandbox's overrides (its namespace,
image tags from its commit, one replica, resources from its class, Ingress
hosts, kubernetes.env and kubernetes.config, --set). Secret values are
replaced by REDACTED. Nothing is applied.

  sandpit render pr-42
  sandpit render pr-42 | kubectl diff -f -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.connect()
			if err != nil {
				return err
			}
			out, err := cl.RenderSandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}
