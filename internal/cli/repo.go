package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

func (a *app) repoCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "repo",
		Aliases: []string{"repos"},
		Short:   "Bind git repositories: a sandbox per branch",
		Long: `A repository binding gives every branch of a repository that the template's
git.branches selects its own sandbox, named after the branch. The server lists
the remote's branches every minute (--every): a new branch gets a sandbox, a
push moves its sandbox to the new commit (relaunched in place), and a deleted
branch — or one that no longer matches — loses it. Webhooks are not needed.

  sandpit repo add shop --url https://example.com/acme/shop.git --template shop
  sandpit repo list
  sandpit repo get shop                 last sync, errors, branch counts
  sandpit repo remove shop              keep its sandboxes, unmanaged
  sandpit repo remove shop --delete-sandboxes

In the template (the default is every branch, and no pull request):

  source: {git: https://example.com/acme/shop.git}
  git:
    branches: ["*", "!*-no-infra"]
    pull_requests: {labels: [preview]}

An open pull request carrying one of the labels gets a sandbox pr-<number> at
its head commit, deleted when the pull request closes or loses the label. The
server lists pull requests through the GitHub API when it has a token
(sandpit serve --github-token-file); without one, pull requests come from
webhooks only. A GitHub webhook to <server>/hooks/github, signed with the
binding's secret (printed once by repo add), makes everything follow at once.
The server comments on the pull request and sets a commit status when its
sandbox is Ready or Failed (with a token).`,
	}
	c.AddCommand(a.repoAddCmd(), a.repoListCmd(), a.repoGetCmd(), a.repoSyncCmd(), a.repoRemoveCmd())
	return c
}

func (a *app) repoAddCmd() *cobra.Command {
	var url, tmpl, output, secretFile, gh string
	var every time.Duration
	var forkSecrets bool
	c := &cobra.Command{
		Use:   "add NAME --url GIT_URL --template TEMPLATE",
		Short: "Bind a repository to a template",
		Long: `Bind a repository to a template. Its first sync starts at once; see it with
sandpit repo get NAME. The URL must be the one the template's source.git
names (sandboxes check out the template's source at their branch's commit).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			if url == "" || tmpl == "" {
				return fmt.Errorf("required flags --url and --template: sandpit repo add %s --url GIT_URL --template TEMPLATE", args[0])
			}
			if every < 0 {
				return fmt.Errorf("invalid argument %q for --every: it must be positive", every)
			}
			req := client.AddRepoRequest{Name: args[0], URL: url, Template: tmpl, Every: sandbox.Duration(every), GitHub: gh, AllowForkSecrets: forkSecrets}
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return fmt.Errorf("--webhook-secret-file: %w", err)
				}
				req.WebhookSecret = strings.TrimSpace(string(b))
				if req.WebhookSecret == "" {
					return fmt.Errorf("--webhook-secret-file %s is empty: put the secret in it, or leave the flag out to have one generated", secretFile)
				}
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			r, err := cl.AddRepo(cmd.Context(), req)
			if err != nil {
				return err
			}
			if output != "table" {
				return printData(a.env.Stdout, output, r)
			}
			fmt.Fprintf(a.env.Stdout, "repository %s bound to template %s\n", r.Name, r.Template)
			if r.WebhookSecret != "" {
				fmt.Fprintf(a.env.Stdout, "webhook secret: %s\n", r.WebhookSecret)
				fmt.Fprintf(a.env.Stderr, "the webhook secret is shown this once: give it to a GitHub webhook (payload URL <server>/hooks/github, content type application/json, events: pull requests, pushes, branch deletions)\n")
			}
			fmt.Fprintf(a.env.Stderr, "its branches are listed now and every %s; see the result with `sandpit repo get %s` and `sandpit list`\n", everyOf(r.Repo), r.Name)
			return nil
		},
	}
	c.Flags().StringVar(&url, "url", "", "repository URL (anything git clone accepts; the template's source.git)")
	c.Flags().StringVarP(&tmpl, "template", "t", "", "template whose git.branches selects the branches")
	c.Flags().DurationVar(&every, "every", 0, "how often to list the remote's branches (default 1m)")
	c.Flags().StringVar(&secretFile, "webhook-secret-file", "", "file holding the GitHub webhook secret (default: generate one and print it once)")
	c.Flags().StringVar(&gh, "github", "", "the repository's OWNER/NAME on GitHub when --url does not say it (a mirror, a file:// URL)")
	c.Flags().BoolVar(&forkSecrets, "allow-fork-secrets", false, "give sandboxes of pull requests from forks the template's secrets (default: none)")
	outputFlag(c, &output, "table, json, yaml")
	return c
}

func everyOf(r client.Repo) string {
	if r.Every > 0 {
		return r.Every.String()
	}
	return "1m0s"
}

func (a *app) repoListCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List repository bindings and how their last sync went",
		Args:    cobra.NoArgs,
	}, func(ctx context.Context, cl *client.Client, _ []string) (*client.RepoList, error) {
		return cl.ListRepos(ctx)
	}, func(l *client.RepoList) error {
		if len(l.Items) == 0 {
			fmt.Fprintln(a.env.Stderr, "no repositories bound: bind one with sandpit repo add NAME --url GIT_URL --template TEMPLATE")
			return nil
		}
		return printRepos(a.env.Stdout, l.Items, time.Now())
	})
}

func printRepos(w io.Writer, items []client.Repo, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tTEMPLATE\tURL\tBRANCHES\tSANDBOXES\tLAST SYNC\tERROR")
	for _, r := range items {
		last, branches, matched := "never", "-", "-"
		if r.Status.LastSyncAt != nil {
			last = age(now.Sub(*r.Status.LastSyncAt)) + " ago"
		}
		if r.Status.LastSuccessAt != nil {
			branches, matched = fmt.Sprint(r.Status.Branches), fmt.Sprint(r.Status.Matched)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Template, r.URL, branches, matched, last, orDash(firstLine(r.Status.Error)))
	}
	return tw.Flush()
}

func (a *app) repoGetCmd() *cobra.Command {
	return readCommand(a, &cobra.Command{
		Use:   "get NAME",
		Short: "Show a repository binding and its last sync",
		Args:  cobra.ExactArgs(1),
	}, func(ctx context.Context, cl *client.Client, args []string) (*client.Repo, error) {
		return cl.GetRepo(ctx, args[0])
	}, func(r *client.Repo) error {
		return describeRepo(a.env.Stdout, r, time.Now())
	})
}

func describeRepo(w io.Writer, r *client.Repo, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", r.Name)
	fmt.Fprintf(tw, "URL:\t%s\n", r.URL)
	fmt.Fprintf(tw, "Template:\t%s\n", r.Template)
	fmt.Fprintf(tw, "Every:\t%s\n", everyOf(*r))
	fmt.Fprintf(tw, "Created:\t%s (%s ago) by %s\n", r.CreatedAt.Local().Format("2006-01-02 15:04:05"), age(now.Sub(r.CreatedAt)), orDash(r.CreatedBy))
	st := r.Status
	switch {
	case st.LastSyncAt == nil:
		fmt.Fprintf(tw, "Last sync:\tnot yet\n")
	default:
		fmt.Fprintf(tw, "Last sync:\t%s ago\n", age(now.Sub(*st.LastSyncAt)))
	}
	if st.LastSuccessAt != nil {
		fmt.Fprintf(tw, "Branches:\t%d (%d with a sandbox), as of %s ago\n", st.Branches, st.Matched, age(now.Sub(*st.LastSuccessAt)))
	}
	if st.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", strings.ReplaceAll(st.Error, "\n", " "))
	}
	return tw.Flush()
}

func (a *app) repoSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync NAME",
		Short: "List a repository's branches now instead of at its next period",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.connect()
			if err != nil {
				return err
			}
			if _, err := cl.SyncRepo(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "repository %s sync requested\n", args[0])
			return nil
		},
	}
}

func (a *app) repoRemoveCmd() *cobra.Command {
	var del bool
	var output string
	c := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm", "delete"},
		Short:   "Remove a repository binding",
		Long: `Remove a repository binding. Its sandboxes are kept, but no longer follow
their branches (binding the same name again takes them back), unless
--delete-sandboxes deletes them too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			cl, err := a.connect()
			if err != nil {
				return err
			}
			res, err := cl.RemoveRepo(cmd.Context(), args[0], del)
			if err != nil {
				return err
			}
			if output != "table" {
				return printData(a.env.Stdout, output, res)
			}
			fmt.Fprintf(a.env.Stdout, "repository %s removed\n", args[0])
			if len(res.DeletedSandboxes) > 0 {
				fmt.Fprintf(a.env.Stdout, "deleting its sandboxes: %s\n", strings.Join(res.DeletedSandboxes, ", "))
			}
			if len(res.Kept) > 0 {
				fmt.Fprintf(a.env.Stderr, "kept its sandboxes (no longer following their branches): %s; delete them with `sandpit delete NAME`\n", strings.Join(res.Kept, ", "))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&del, "delete-sandboxes", false, "also delete the sandboxes the binding made")
	outputFlag(c, &output, "table, json, yaml")
	return c
}
