// Command sandpit is Sandpit's single binary: the server (`sandpit serve`),
// the client commands, and the per-service supervisor the server starts
// (`sandpit shim`, hidden). It only reads flags, builds components and runs
// them; the logic lives in internal/.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	// Time zones for usage reports (GET /api/v1/usage?tz=...) on hosts and
	// images without /usr/share/zoneinfo; the system's database wins when
	// present.
	_ "time/tzdata"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"sandpit.dev/sandpit/internal/cli"
	"sandpit.dev/sandpit/internal/runtime/local"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The shim is started by the server for every service: keep its path
	// free of cobra and of signal handling meant for interactive use.
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	env := cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		IsTerminal: func(w io.Writer) bool {
			f, ok := w.(*os.File)
			return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
		},
	}
	root := cli.NewRoot(env, version, serveCmd(), shimCmd())
	os.Exit(cli.Execute(ctx, root, os.Stderr))
}

func serveCmd() *cobra.Command {
	var cfg server.Config
	var logFormat, logLevel string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the Sandpit server (API, reconciler, endpoint proxy)",
		Long: `Run the Sandpit server: the HTTP API, the reconciler that launches and
removes sandboxes, and the endpoint proxy that serves each sandbox's endpoints
at <endpoint>--<sandbox>.<domain>. The embedded default needs nothing else:
state goes to SQLite in the data dir and sandboxes run as local processes.

--store (or $SANDPIT_STORE) puts the state in a PostgreSQL database instead,
one that two or more replicas of the server can share:

  export SANDPIT_STORE='postgres://sandpit@db.example.com:5432/sandpit?sslmode=require'
  export PGPASSWORD=...    # or a ~/.pgpass file; keeps it out of ps and logs
  sandpit serve

The role needs to create tables (make it the database's owner); the server
applies its migrations on start. Logs show the URL with the password redacted.

On first start it writes an admin token to <data-dir>/admin.token (mode 0600);
clients send it as a bearer token (the CLI reads it from there, or from
$SANDPIT_TOKEN). When run as root, services and databases run as an
unprivileged user (--run-as, created if missing), never as root.

Databases and snapshots live in a copy-on-write store under <data-dir>/volumes,
so a database seeded from a snapshot starts in constant time: btrfs subvolume
snapshots when the data dir is on btrfs, or (as root) on a btrfs image file
<data-dir>/volumes.img that the server creates (sparse) and loop-mounts; else
reflink copies (XFS); plain copies only as the last resort. The start-up log
says which one it uses and why (--snapshot-store forces one).

Stopping the server (Ctrl-C, SIGTERM) leaves sandboxes running; the next start
re-adopts them and resumes any launch, deletion or snapshot that was
interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logFormat, logLevel)
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the sandpit binary for service supervisors: %w", err)
			}
			if exe, err = filepath.EvalSymlinks(exe); err != nil {
				return err
			}
			cfg.ShimCommand = []string{exe, "shim"}
			if !cmd.Flags().Changed("store") {
				// Read here, not as the flag's default, so that --help
				// never prints a URL that may hold a password.
				cfg.Store = os.Getenv("SANDPIT_STORE")
			}
			server.TuneRuntime()
			cfg.Logger = log
			cfg.Version = version
			return server.Run(cmd.Context(), cfg)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cli.DefaultDataDir(), "where state, sandboxes and the admin token live ($SANDPIT_DATA_DIR)")
	f.StringVar(&cfg.Store, "store", "", "where state lives: sqlite (the default: <data-dir>/sandpit.db) or a PostgreSQL URL replicas can share, e.g. postgres://sandpit@db.example.com:5432/sandpit?sslmode=require ($SANDPIT_STORE; pass the password in $PGPASSWORD or ~/.pgpass, not here)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:7700", "API address")
	f.StringVar(&cfg.ProxyListen, "proxy-listen", "127.0.0.1:7701", "endpoint proxy address")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serve the API and the proxy over HTTPS with this PEM certificate (chain); needs --tls-key")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	f.BoolVar(&cfg.TLSSelfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate for localhost, 127.0.0.1 and *.<domain>, made in <data-dir>/tls on first start and reused (clients: export SANDPIT_CA_FILE=<data-dir>/tls/self-signed.crt)")
	f.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "how long a client may take to send a request header (slowloris bound)")
	f.StringVar(&cfg.Domain, "domain", "localhost", "base domain of endpoint hosts (<endpoint>--<sandbox>.<domain>); *.localhost resolves to loopback in browsers")
	f.StringVar(&cfg.RunAs, "run-as", "", "user services run as when the server is root (default \"sandpit\", created if missing)")
	f.StringVar(&cfg.HomeDir, "home-dir", "", "HOME of services and builds, shared so build caches stay warm (default <data-dir>/home)")
	f.StringVar(&cfg.PortRange, "port-range", "20000-29999", "loopback ports handed to services and databases")
	f.IntVar(&cfg.Workers, "workers", 4, "sandboxes launched or deleted at once")
	f.DurationVar(&cfg.StopTimeout, "stop-timeout", 10*time.Second, "grace period between a service's stop signal and SIGKILL")
	f.StringVar(&cfg.SnapshotStore, "snapshot-store", "auto", "how databases and snapshots are kept: auto, btrfs, reflink or copy")
	f.Var(byteSize{&cfg.SnapshotImageSize}, "snapshot-image-size", "size of the btrfs image created when the data dir is not btrfs, e.g. 100G (default 80% of the free space; the file is sparse)")
	f.Var(resourceClasses{&cfg.ResourceClasses}, "resource-class", "define or redefine a resource class templates may name, e.g. small=cpu:0.5,memory:512Mi (repeatable; adds to the built-in small, standard and large)")
	f.Var(optDuration{&cfg.Lifecycle.IdleSuspend}, "idle-suspend", "suspend sandboxes after this long without activity, overriding every template's lifecycle.idle_suspend (0 turns idle suspend off; a sandbox's own --idle-suspend still wins)")
	f.DurationVar(&cfg.Lifecycle.KeepFailed, "keep-failed", 72*time.Hour, "how long a Failed sandbox is kept for debugging when its template says nothing (0 keeps it until deleted)")
	f.DurationVar(&cfg.Lifecycle.SuspendedRetention, "suspended-retention", 7*24*time.Hour, "delete sandboxes that stayed suspended this long (0 keeps them)")
	f.IntVar(&cfg.Lifecycle.MaxPinsPerUser, "max-pins-per-user", 3, "pinned sandboxes allowed per user (-1: no limit)")
	f.IntVar(&cfg.Lifecycle.MaxSandboxesPerUser, "max-sandboxes-per-user", 0, "sandboxes allowed per user (0: no limit)")
	f.StringVar(&cfg.GitHubAPIURL, "github-api-url", "https://api.github.com", "GitHub REST API base URL (GitHub Enterprise Server: https://HOST/api/v3)")
	f.StringVar(&cfg.GitHubTokenFile, "github-token-file", "", "file with the GitHub token used to list pull requests and comment on them (read once at start; without it pull requests come from webhooks only)")
	f.IntVar(&cfg.Lifecycle.MaxRunningPerUser, "max-running-per-user", 0, "running (not suspended or failed) sandboxes allowed per user (0: no limit)")
	f.StringVar(&cfg.Runtime, "runtime", "local", "where sandboxes run: local (processes on this host) or kubernetes (a namespace per sandbox on the cluster --kubeconfig names, or the one the server runs in)")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster for --runtime kubernetes and --leader-elect (default $KUBECONFIG, else the pod's service account)")
	f.StringVar(&cfg.KubeInstance, "kube-instance", "sandpit", "name of this installation on the cluster: labels its namespaces, so that several installations can share a cluster without deleting each other's")
	f.StringVar(&cfg.KubeNamespacePrefix, "kube-namespace-prefix", "sandpit-", "start of every sandbox namespace's name (the sandbox id follows)")
	f.StringSliceVar(&cfg.KubeAllowClusterKinds, "kube-allow-cluster-kind", nil, "cluster-scoped kind templates may create, as Kind.group, e.g. ClusterRole.rbac.authorization.k8s.io (repeatable; others are refused)")
	f.BoolVar(&cfg.LeaderElect, "leader-elect", false, "run as one of several replicas sharing a --store: they elect, with a Kubernetes Lease, the one that reconciles; the others serve the API and the proxy")
	f.StringVar(&cfg.LeaderElectNamespace, "leader-elect-namespace", "", "namespace of the leader Lease (default $POD_NAMESPACE, else default)")
	f.StringVar(&cfg.TokenFile, "token-file", "", "read the admin token from this file (replicas share one, e.g. from a Secret) instead of <data-dir>/admin.token")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return c
}

// optDuration is a duration flag that tells "not given" (nil) from 0.
type optDuration struct{ d **time.Duration }

func (o optDuration) String() string {
	if o.d == nil || *o.d == nil {
		return ""
	}
	return (**o.d).String()
}

func (o optDuration) Type() string { return "duration" }

func (o optDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration: write it like 30m or 2h (0 for never)", s)
	}
	*o.d = &v
	return nil
}

// resourceClasses is the repeatable --resource-class flag: each value
// defines one class, over the built-in ones.
type resourceClasses struct {
	m *map[string]local.ResourceClass
}

func (r resourceClasses) String() string {
	if r.m == nil || *r.m == nil {
		return ""
	}
	var out []string
	for _, c := range *r.m {
		out = append(out, c.String())
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func (r resourceClasses) Type() string { return "class" }

func (r resourceClasses) Set(s string) error {
	c, err := local.ParseResourceClass(s)
	if err != nil {
		return err
	}
	if *r.m == nil {
		*r.m = local.DefaultResourceClasses()
	}
	(*r.m)[c.Name] = c
	return nil
}

// byteSize is a flag holding a size like "512M", "100G" or "2T".
type byteSize struct{ n *int64 }

func (b byteSize) String() string {
	if b.n == nil || *b.n == 0 {
		return ""
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b byteSize) Type() string { return "size" }

func (b byteSize) Set(s string) error {
	mult := int64(1)
	num := strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B")
	num = strings.TrimSuffix(num, "I")
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a size: write it like 512M, 100G or 2T", s)
	}
	*b.n = int64(v * float64(mult))
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid argument %q for --log-level: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid argument %q for --log-format: use text or json", format)
}

// shimCmd documents the hidden supervisor entry point; main dispatches to it
// before cobra runs.
func shimCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "shim SPEC-FILE",
		Short:  "Supervise one service (started by the server)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if code := shim.Main(args); code != 0 {
				return fmt.Errorf("shim exited with code %d", code)
			}
			return nil
		},
	}
}
