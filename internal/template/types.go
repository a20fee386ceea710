package template

import (
	"fmt"
	"time"
)

// APIVersion is the only template format version this build reads.
const APIVersion = "sandpit/v1"

// Template is a decoded, validated sandpit/v1 template. The YAML and JSON
// field names are the format; the JSON Schema (Schema) is generated from
// these types, so a doc comment on a field is its description for editors.
type Template struct {
	// APIVersion must be "sandpit/v1".
	APIVersion string `yaml:"apiVersion" json:"apiVersion" jsonschema:"enum=sandpit/v1"`
	// Name identifies the template; sandboxes are created from it by name.
	Name string `yaml:"name" json:"name"`
	// Description is free text shown in listings.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Source is where the code comes from; each sandbox gets its own
	// checkout of it at the requested ref.
	Source *Source `yaml:"source,omitempty" json:"source,omitempty"`
	// Env is set for every service (a service's own env wins).
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Services are the long-running programs of the sandbox.
	Services map[string]*Service `yaml:"services" json:"services"`
	// Dependencies are managed backing services, started per sandbox.
	Dependencies map[string]*Dependency `yaml:"dependencies,omitempty" json:"dependencies,omitempty"`
	// Endpoints are the named HTTP entry points of the sandbox, reachable at
	// <endpoint>--<sandbox>.<domain>.
	Endpoints map[string]*Endpoint `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// Lifecycle says when sandboxes are suspended and deleted, and how
	// many are kept ready in a warm pool.
	Lifecycle *Lifecycle `yaml:"lifecycle,omitempty" json:"lifecycle,omitempty"`
	// Resources limits the CPU and memory the whole sandbox (all its
	// services and dependencies together) may use.
	Resources *Resources `yaml:"resources,omitempty" json:"resources,omitempty"`
	// Kubernetes reuses existing Kubernetes configuration (plain
	// manifests, a kustomization or a Helm chart from the checkout) in
	// the kubernetes runtime, where each sandbox is a namespace, and says
	// what to change in it per sandbox. The local runtime ignores it.
	Kubernetes *Kubernetes `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
	// Git says which branches and pull requests of a bound
	// repository (`sandpit repo add`) get a sandbox of this template.
	Git *Git `yaml:"git,omitempty" json:"git,omitempty"`

	// ServiceOrder, DependencyOrder and EndpointOrder keep declaration
	// order, which listings and launch order follow where nothing else
	// decides.
	ServiceOrder    []string `yaml:"-" json:"-"`
	DependencyOrder []string `yaml:"-" json:"-"`
	EndpointOrder   []string `yaml:"-" json:"-"`

	// File is the name errors are reported against.
	File string `yaml:"-" json:"-"`
	// positions maps a field path ("services.api.ports[0].name") to where
	// it stands in the file.
	positions map[string]Pos
}

// Source says where a sandbox's code comes from: exactly one of Git or Path.
type Source struct {
	// Git is a repository URL (anything `git clone` accepts).
	Git string `yaml:"git,omitempty" json:"git,omitempty"`
	// Path is a directory on the server host; relative paths are relative to
	// the template file. With a ref and a git repository there, the ref is
	// checked out; otherwise the directory is copied as it is.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Ref is the default ref when a sandbox names none.
	Ref string `yaml:"ref,omitempty" json:"ref,omitempty"`
}

// RestartPolicy says what happens when a service's process exits.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// Service is one long-running program.
type Service struct {
	// Build runs once per checkout (per commit), in the workdir, before the
	// service starts. A shell command.
	Build string `yaml:"build,omitempty" json:"build,omitempty"`
	// Init runs once per sandbox after the service's `after` targets are
	// ready and before it starts: migrations, seed scripts. If the server
	// is interrupted while it runs it runs again, so make it idempotent.
	Init string `yaml:"init,omitempty" json:"init,omitempty"`
	// Run starts the service. A shell command; it must not daemonise.
	// Required unless the service has an image: a service with only an
	// image is a container whose own entrypoint runs, which only the
	// kubernetes runtime can start.
	Run string `yaml:"run,omitempty" json:"run,omitempty"`
	// Image is the container image the kubernetes runtime runs (with
	// ${...} references, like registry.example.com/api:${git.sha}); the
	// local runtime ignores it. Containers of kubernetes.* manifests whose
	// image has the same repository get this image too.
	Image string `yaml:"image,omitempty" json:"image,omitempty"`
	// Workdir is relative to the checkout (default: its root).
	Workdir string `yaml:"workdir,omitempty" json:"workdir,omitempty"`
	// Env for this service, on top of the template's env.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Ports the service listens on. Locally each gets a free port, handed
	// to the service through ${ports.<name>}.
	Ports []Port `yaml:"ports,omitempty" json:"ports,omitempty"`
	// Ready says how to tell that the service is serving. Without it the
	// service is ready once started.
	Ready *Probe `yaml:"ready,omitempty" json:"ready,omitempty"`
	// After lists services and dependencies that must be ready first.
	After []string `yaml:"after,omitempty" json:"after,omitempty"`
	// Restart is always (the default), on-failure or never.
	Restart RestartPolicy `yaml:"restart,omitempty" json:"restart,omitempty" jsonschema:"enum=always,enum=on-failure,enum=never"`
	// Files are rendered into the workdir before build, with the same
	// ${...} interpolation as commands and env.
	Files []File `yaml:"files,omitempty" json:"files,omitempty"`
}

// Port is a named port of a service.
type Port struct {
	// Name is how routes, probes and ${ports.<name>} refer to it.
	Name string `yaml:"name" json:"name"`
	// Port is the port the service uses in production (the kubernetes
	// runtime's container port). The local runtime allocates its own.
	Port int `yaml:"port,omitempty" json:"port,omitempty" jsonschema:"minimum=1,maximum=65535"`
	// Protocol is http (the default) or tcp; only http ports can be routed.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty" jsonschema:"enum=http,enum=tcp"`
}

// Probe is a readiness check: exactly one of HTTP, TCP or Exec.
type Probe struct {
	// HTTP checks that a port answers HTTP requests.
	HTTP *HTTPProbe `yaml:"http,omitempty" json:"http,omitempty"`
	// TCP checks that a port accepts connections.
	TCP *TCPProbe `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	// Exec runs a command.
	Exec *ExecProbe `yaml:"exec,omitempty" json:"exec,omitempty"`
	// Timeout bounds how long the service may take to become ready
	// (default 2m).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Interval is the longest wait between two checks (default 1s); checks
	// start faster and back off to it.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// HTTPProbe is ready when GET Path on the named port answers 2xx or 3xx.
type HTTPProbe struct {
	// Port names one of the service's ports.
	Port string `yaml:"port" json:"port"`
	// Path is requested (default "/"); it starts with "/".
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
}

// TCPProbe is ready when the named port accepts a connection.
type TCPProbe struct {
	// Port names one of the service's ports.
	Port string `yaml:"port" json:"port"`
}

// ExecProbe is ready when Command (a shell command, run like the service)
// exits 0.
type ExecProbe struct {
	// Command is a shell command, interpolated like run.
	Command string `yaml:"command" json:"command"`
}

// File is a file rendered into the service's workdir.
type File struct {
	// Path is relative to the workdir and must stay inside it.
	Path string `yaml:"path" json:"path"`
	// Content is interpolated like commands.
	Content string `yaml:"content" json:"content"`
	// Mode is an octal permission string (default "0644").
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty" jsonschema:"pattern=^0?[0-7]{3}$"`
}

// Dependency is a managed backing service.
type Dependency struct {
	// Type is the kind of dependency; "postgres" for now.
	Type string `yaml:"type" json:"type" jsonschema:"enum=postgres"`
	// Version is the major version, for example "15".
	Version string `yaml:"version" json:"version"`
	// Databases to create (default: one named after the dependency). The
	// first is the one ${dependencies.<name>.url} names.
	Databases []string `yaml:"databases,omitempty" json:"databases,omitempty"`
	// Snapshot names the data snapshot the dependency starts from (see
	// `sandpit snapshot`); it must hold the same type and major version.
	// Without it the database starts empty.
	Snapshot string `yaml:"snapshot,omitempty" json:"snapshot,omitempty"`
}

// Endpoint is a named HTTP entry point routed by path prefix.
type Endpoint struct {
	// Routes are matched longest prefix first.
	Routes []Route `yaml:"routes" json:"routes"`
	// Access is reserved: private (the default), org or public.
	Access string `yaml:"access,omitempty" json:"access,omitempty" jsonschema:"enum=private,enum=org,enum=public"`
}

// Route sends requests under Path to To ("service:port").
type Route struct {
	// Path is the path prefix to route; it starts with "/".
	Path string `yaml:"path" json:"path"`
	// To is "service:port", naming an http port of a service.
	To string `yaml:"to" json:"to"`
}

// Lifecycle says when sandboxes sleep and when they go away.
type Lifecycle struct {
	// TTL deletes a sandbox this long after it was created (or after its
	// last `sandpit extend`). Without it sandboxes live until deleted.
	TTL Duration `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// IdleSuspend suspends a sandbox after this long without activity
	// (requests to its endpoints, logs -f, exec); the next request wakes
	// it. The server and each sandbox may override it.
	IdleSuspend Duration `yaml:"idle_suspend,omitempty" json:"idle_suspend,omitempty"`
	// KeepFailed is how long a failed sandbox is kept for debugging before
	// it is deleted (default: the server's --keep-failed).
	KeepFailed Duration `yaml:"keep_failed,omitempty" json:"keep_failed,omitempty"`
	// Pool keeps sandboxes ready to claim.
	Pool *Pool `yaml:"pool,omitempty" json:"pool,omitempty"`
}

// Pool keeps sandboxes of the template provisioned and ready, so that
// `sandpit create NAME --template T` claims one instead of launching.
type Pool struct {
	// Min is how many ready sandboxes to keep.
	Min int `yaml:"min" json:"min" jsonschema:"minimum=0"`
	// Suspend suspends pool sandboxes once they are ready, to save memory;
	// a claim then wakes one (slower than claiming a running one, still
	// far faster than a launch).
	Suspend bool `yaml:"suspend,omitempty" json:"suspend,omitempty"`
}

// Resources picks the sandbox's resource limits.
type Resources struct {
	// Class names one of the server's resource classes: by default small
	// (0.5 CPU, 512 MiB), standard (1 CPU, 1 GiB) or large (2 CPUs,
	// 4 GiB); `sandpit serve --resource-class` defines others. The local
	// runtime enforces them with cgroups where the host allows it, and
	// the sandbox's status says when it cannot.
	Class string `yaml:"class,omitempty" json:"class,omitempty"`
}

// Kubernetes is the template's Kubernetes configuration: at most one of
// Manifests, Kustomize or Helm as the source of objects, and what to
// change in the rendered objects for each sandbox.
type Kubernetes struct {
	// Manifests is a folder of YAML files (*.yaml and *.yml, searched
	// recursively; a file may hold several documents), relative to the
	// checkout.
	Manifests string `yaml:"manifests,omitempty" json:"manifests,omitempty"`
	// Kustomize is a kustomization directory relative to the checkout,
	// rendered by sandpit itself (no kubectl or kustomize needed). Its
	// bases and components must be in the checkout too: remote bases are
	// not fetched.
	Kustomize string `yaml:"kustomize,omitempty" json:"kustomize,omitempty"`
	// Helm renders a chart from the checkout, like `helm template`.
	Helm *Helm `yaml:"helm,omitempty" json:"helm,omitempty"`
	// Env is set on every container of the rendered workloads (not on
	// the dependencies sandpit runs), after their own env: it replaces
	// entries of the same name. Values may hold ${...} references,
	// expanded like the template's env.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Config sets keys of ConfigMaps of the rendered objects:
	// config: {<configmap name>: {<key>: <value>}}. Each ConfigMap must
	// exist in what manifests, kustomize or helm render (the hash suffix
	// of a kustomize configMapGenerator's name may be left out). Values
	// may hold ${...} references.
	Config map[string]map[string]string `yaml:"config,omitempty" json:"config,omitempty"`
}

// Helm renders a local chart in-process. The chart's dependencies must be
// vendored in its charts/ folder (helm dependency build): nothing is
// downloaded.
type Helm struct {
	// Chart is the chart's directory, relative to the checkout.
	Chart string `yaml:"chart" json:"chart"`
	// Release is the release name (default: the template's name).
	Release string `yaml:"release,omitempty" json:"release,omitempty"`
	// ValuesFiles are values files relative to the checkout, merged in
	// order (later files win), like helm's -f.
	ValuesFiles []string `yaml:"values_files,omitempty" json:"values_files,omitempty"`
	// Values are merged over the values files, like helm's --set. String
	// values may hold ${...} references (like tag: ${git.sha}); write
	// $${ for a literal "${".
	Values map[string]any `yaml:"values,omitempty" json:"values,omitempty"`
}

// Git selects the branches and pull requests of a bound repository that
// get a sandbox each.
type Git struct {
	// Branches are glob patterns over branch names (without refs/heads/):
	// `*` matches any run of characters including '/', `?` one character,
	// `[a-z]` and `[!a-z]` a class. A pattern starting with '!' excludes. A
	// branch gets a sandbox when some pattern without '!' matches it and no
	// '!' pattern does; order does not matter. A list of only exclusions
	// means every other branch. Without branches every branch gets one;
	// an empty list means none.
	Branches []string `yaml:"branches,omitempty" json:"branches,omitempty"`
	// PullRequests selects pull requests by label.
	PullRequests *PullRequests `yaml:"pull_requests,omitempty" json:"pull_requests,omitempty"`
}

// PullRequests selects pull requests that get a sandbox each.
type PullRequests struct {
	// Labels: a pull request carrying any of them gets a sandbox. Without
	// labels no pull request does.
	Labels []string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Duration is a time.Duration written as Go duration text ("30s", "72h").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes "72h0m0s"-style text.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses Go duration text.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write a number and a unit, like 30s, 10m or 72h", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative: durations must be zero or more", b)
	}
	*d = Duration(v)
	return nil
}

// Pos is a place in a template file. Line and Column are 1-based.
type Pos struct {
	File   string
	Line   int
	Column int
}

// String formats "file:line:column", leaving out what is unknown: the YAML
// parser reports no column for some syntax errors, and some problems
// concern the whole file.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}
