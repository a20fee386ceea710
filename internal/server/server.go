package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"sandpit.dev/sandpit/internal/api"
	"sandpit.dev/sandpit/internal/auth"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/gitsync"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/notify"
	"sandpit.dev/sandpit/internal/proxy"
	"sandpit.dev/sandpit/internal/ratelimit"
	"sandpit.dev/sandpit/internal/reconcile"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/snapshot"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/web"
)

// Config is `sandpit serve`'s configuration.
type Config struct {
	DataDir     string
	Listen      string // API address
	ProxyListen string // endpoint proxy address
	Domain      string
	RunAs       string
	HomeDir     string
	PortRange   string // "20000-29999"
	Workers     int
	StopTimeout time.Duration
	// SnapshotStore forces how snapshots and dependency data are kept:
	// "btrfs", "reflink" or "copy" ("" or "auto" picks the best this host
	// allows; see volume.Open).
	SnapshotStore string
	// SnapshotImageSize is the size of the btrfs image created when the
	// data dir is not btrfs (0: 80% of the free space, sparse).
	SnapshotImageSize int64
	// Store is where state lives: "" or "sqlite" for <DataDir>/sandpit.db,
	// or a postgres:// URL that several servers may share (see openStore).
	Store string
	// ResourceClasses are the resource classes templates may name (nil:
	// local.DefaultResourceClasses).
	ResourceClasses map[string]local.ResourceClass
	// Lifecycle is the server's lifecycle policy: idle suspend override,
	// keep-failed default, retention of suspended sandboxes, per-user
	// limits.
	Lifecycle lifecycle.Policy
	// ActivityFlush is how often recorded activity is written to the store
	// (default 5s).
	ActivityFlush time.Duration
	// GitHubAPIURL is the GitHub REST API's base URL (default
	// github.DefaultAPIURL; GitHub Enterprise Server: https://HOST/api/v3).
	GitHubAPIURL string
	// GitHubTokenFile holds the token gitsync lists pull requests and
	// reports to them with; it is read once, at start, and never logged
	// or returned. Empty: pull requests come from webhooks only, and
	// nothing is reported.
	GitHubTokenFile string
	// Runtime is where sandboxes run: "local" (the default) or
	// "kubernetes" (a namespace per sandbox, on the cluster Kubeconfig
	// names, or the one the server runs in).
	Runtime    string
	Kubeconfig string
	// KubeInstance labels this installation's namespaces so several can
	// share a cluster (default "sandpit"); KubeNamespacePrefix starts
	// their names (default "sandpit-").
	KubeInstance        string
	KubeNamespacePrefix string
	// KubeAllowClusterKinds are the cluster-scoped kinds ("Kind.group")
	// templates may create.
	KubeAllowClusterKinds []string
	// LeaderElect makes replicas sharing a store elect, with a Kubernetes
	// Lease in LeaderElectNamespace, the one that reconciles; the others
	// serve the API and the proxy and follow the store.
	LeaderElect          bool
	LeaderElectNamespace string
	// TokenFile, if set, holds the admin token (replicas share it, from a
	// Secret) instead of <DataDir>/admin.token.
	TokenFile string
	// StorePoll is how often replicas sharing a store look for changes
	// other replicas made (default 1s; only with LeaderElect or a
	// PostgreSQL store).
	StorePoll time.Duration
	// TLSCert and TLSKey are PEM files the API and the proxy serve HTTPS
	// with; TLSSelfSigned instead makes (on first start, then reuses) a
	// self-signed certificate for localhost, 127.0.0.1 and the proxy
	// domain's wildcard in <DataDir>/tls. None: plain HTTP.
	TLSCert, TLSKey string
	TLSSelfSigned   bool
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's header to either listener (slowloris; default 10s).
	ReadHeaderTimeout time.Duration
	// ShimCommand starts a shim (the sandpit binary and "shim").
	ShimCommand []string
	Logger      *slog.Logger
	Version     string
	// Started, if set, is called once both listeners accept connections.
	Started func(Info)
}

// Info describes a started server.
type Info struct {
	APIURL    string
	ProxyAddr string
	DataDir   string
	TokenFile string
	// CAFile is the self-signed certificate clients should trust
	// (SANDPIT_CA_FILE), when the server made one.
	CAFile string
}

// TokenFile is where the admin token lives in a data dir.
func TokenFile(dataDir string) string { return filepath.Join(dataDir, "admin.token") }

// Run serves until ctx ends, then shuts down gracefully: listeners close,
// streams end, in-flight launches stop at a safe point (they resume on the
// next start), and services keep running under their shims.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	tokenFile := TokenFile(dataDir)
	if cfg.TokenFile != "" {
		tokenFile = cfg.TokenFile
	}
	token, err := loadOrCreateToken(tokenFile)
	if err != nil {
		return err
	}
	gh, err := githubClient(cfg.GitHubAPIURL, cfg.GitHubTokenFile)
	if err != nil {
		return err
	}
	lo, hi, err := parsePortRange(cfg.PortRange)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg.Store, dataDir, log.With("component", "store"))
	if err != nil {
		return err
	}
	defer st.Close()
	user, err := proc.ResolveUser(cfg.RunAs, true)
	if err != nil {
		return err
	}
	domain := cfg.Domain
	if domain == "" {
		domain = "localhost"
	}
	var rt runtime.Runtime
	switch cfg.Runtime {
	case "", "local":
		vols, err := OpenVolumes(ctx, dataDir, cfg.SnapshotStore, cfg.SnapshotImageSize, log)
		if err != nil {
			return err
		}
		log.Info("snapshot store: "+vols.Describe(), "method", vols.Method())
		rt, err = local.New(ctx, local.Config{
			DataDir: dataDir, HomeDir: cfg.HomeDir, User: user, ShimCommand: cfg.ShimCommand,
			PortLow: lo, PortHigh: hi, Handles: st, Logger: log, StopTimeout: cfg.StopTimeout,
			Volumes: vols, ResourceClasses: cfg.ResourceClasses,
		})
		if err != nil {
			return err
		}
	case "kubernetes", "kube":
		kr, err := openKube(ctx, cfg, dataDir, domain, log)
		if err != nil {
			return err
		}
		defer kr.Close()
		rt = kr
	default:
		return fmt.Errorf("--runtime %q: use local (processes on this host) or kubernetes (a namespace per sandbox)", cfg.Runtime)
	}

	tlsCfg, err := tlsConfig(cfg.TLSCert, cfg.TLSKey, cfg.TLSSelfSigned, dataDir, domain)
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}

	apiLn, err := listen(cfg.Listen, "--listen")
	if err != nil {
		return err
	}
	defer apiLn.Close()
	proxyLn, err := listen(cfg.ProxyListen, "--proxy-listen")
	if err != nil {
		return err
	}
	defer proxyLn.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	proxyPort := proxyLn.Addr().(*net.TCPAddr).Port
	endpointURL := func(sb, ep string) string {
		host := ep + "--" + sb + "." + domain
		if proxyPort != 80 {
			host += ":" + strconv.Itoa(proxyPort)
		}
		return scheme + "://" + host
	}
	table := proxy.NewTable()
	broker := notify.New()
	activity := lifecycle.NewActivity(time.Now)
	var rec *reconcile.Reconciler
	snapRT, _ := rt.(runtime.Snapshotter) // nil: this runtime keeps no snapshots
	snaps := snapshot.New(snapshot.Config{
		Store: st, Runtime: snapRT, Logger: log, SpoolDir: filepath.Join(dataDir, "incoming"),
		Notify: broker.Notify,
		OnReady: func(*sandbox.Snapshot) {
			// Sandboxes waiting for it are retried with backoff; look at
			// them now instead.
			sbs, err := st.ListSandboxes(context.Background(), store.ListOptions{})
			if err != nil {
				return
			}
			for _, sb := range sbs {
				if sb.Status.Phase != sandbox.PhaseReady {
					rec.Enqueue(sb.ID)
				}
			}
		},
	})
	routes := NewRoutes(table, activity)
	var reporter *gitsync.Reporter
	if gh.HasToken() {
		reporter = gitsync.NewReporter(gitsync.ReporterConfig{GitHub: gh, Store: st, Logger: log})
	} else {
		log.Info("no GitHub token (--github-token-file): pull requests come from webhooks only, and nothing is reported to them")
	}
	rec = reconcile.New(reconcile.Config{
		ResolveSnapshot: snaps.Resolve,
		Store:           st, Runtime: rt, Logger: log, Workers: cfg.Workers, EndpointURL: endpointURL, Registerer: reg,
		Policy: cfg.Lifecycle, Activity: activity.Last,
		OnChange: func(sb *sandbox.Sandbox, gone bool) {
			routes.Update(sb, gone)
			broker.Notify(sb.ID)
			if reporter != nil {
				reporter.Observe(sb, gone) // never blocks
			}
		},
	})
	syncer := gitsync.New(gitsync.Config{Store: st, Enqueue: rec.Enqueue, Notify: broker.Notify, Logger: log, GitHub: gh})
	sbs, err := st.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		return err
	}
	routes.Load(sbs)

	streamsCtx, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	sessions := auth.NewSessions(token, 0, nil)
	// Wrong tokens, at sign-in or as bearer tokens, count against one
	// limit per client address.
	authLimiter := ratelimit.New(ratelimit.DefaultFailures, ratelimit.DefaultWindow, nil)
	apiHandler := api.New(api.Config{
		Store: st, Runtime: rt, Enqueue: rec.Enqueue, Broker: broker, Logger: log, Token: token, Sessions: sessions,
		Gatherer: reg, Registerer: reg, Version: cfg.Version, BaseContext: streamsCtx,
		Snapshots: snaps,
		Policy:    cfg.Lifecycle, Activity: activity, Lifecycle: rec.Lifecycle, PoolChanged: rec.WantPoolCheck,
		RepoChanged: syncer.Enqueue, PullRequestEvent: syncer.ObservePullRequest, GitHubAPIURL: gh.BaseURL(),
		AuthLimiter: authLimiter,
	})
	console := web.New(web.Config{API: apiHandler, Sessions: sessions, Logger: log, Version: cfg.Version,
		CheckToken: func(tok string) (string, bool) { return "admin", apiHandler.ValidToken(tok) },
		Limiter:    authLimiter})
	// Both servers bound the request header (time and size) and idle
	// connections, but set no ReadTimeout or WriteTimeout: those would cut
	// log and event follows, exec sessions, uploads and the proxy's
	// websockets. The API sets deadlines per request on its other routes
	// instead (see api.withDeadlines).
	apiSrv := proxy.NewServer("", console)
	px := proxy.New(proxy.Config{Domain: domain, Table: table, Logger: log.With("component", "proxy"), Registerer: reg,
		OnRequest: func(sb, _ string) { activity.Touch(sb) },
		Wake:      apiHandler.Wake,
	})
	proxySrv := proxy.NewServer("", px)
	for _, s := range []*http.Server{apiSrv, proxySrv} {
		s.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		if cfg.ReadHeaderTimeout > 0 {
			s.ReadHeaderTimeout = cfg.ReadHeaderTimeout
		}
		s.RegisterOnShutdown(endStreams)
	}
	if tlsCfg != nil {
		apiSrv.TLSConfig = tlsCfg.Clone() // HTTP/2 too: the console holds several streams open
		proxySrv.TLSConfig = tlsCfg.Clone()
		// HTTP/1.1 only on the proxy: websockets to sandboxes upgrade an
		// HTTP/1.1 connection.
		proxySrv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	serve := func(s *http.Server, ln net.Listener) error {
		if tlsCfg != nil {
			return s.ServeTLS(ln, "", "")
		}
		return s.Serve(ln)
	}

	recCtx, stopRec := context.WithCancel(context.Background())
	defer stopRec()
	if err := snaps.Start(recCtx); err != nil {
		return err
	}
	defer snaps.Wait()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	wg.Add(3)
	go func() {
		defer wg.Done()
		flushActivity(recCtx, st, activity, cfg.ActivityFlush, log)
	}()
	// The controllers change sandboxes; with leader election only the
	// replica holding the Lease runs them.
	controllers := func(ctx context.Context) {
		var cwg sync.WaitGroup
		cwg.Add(2)
		go func() {
			defer cwg.Done()
			if err := rec.Run(ctx); err != nil {
				errc <- fmt.Errorf("reconciler: %w", err)
			}
		}()
		go func() {
			defer cwg.Done()
			_ = syncer.Run(ctx) // returns only when stopped
		}()
		if reporter != nil {
			cwg.Add(1)
			go func() {
				defer cwg.Done()
				reporter.Run(ctx)
			}()
		}
		cwg.Wait()
	}
	var leading atomic.Bool
	if cfg.LeaderElect {
		el, err := newLeaderElector(cfg, log, func(ctx context.Context) {
			leading.Store(true)
			controllers(ctx)
		}, func() {
			if recCtx.Err() == nil {
				select {
				case errc <- errors.New("lost the leader lease: exiting so that a restart rejoins the election"):
				default:
				}
			}
		})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			el.Run(recCtx)
		}()
	} else {
		leading.Store(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			controllers(recCtx)
		}()
	}
	if cfg.LeaderElect || isPostgres(cfg.Store) {
		// Other replicas change the store too: follow it, so this
		// replica's proxy routes and event streams stay current, and so
		// the leader reconciles what another replica's API accepted.
		wg.Add(1)
		go func() {
			defer wg.Done()
			followStore(recCtx, st, cfg.StorePoll, func(sb *sandbox.Sandbox, gone bool, id string) {
				if sb != nil {
					routes.Update(sb, gone)
				}
				broker.Notify(id)
				if leading.Load() {
					rec.Enqueue(id)
				}
			}, log)
		}()
	}
	go func() {
		defer wg.Done()
		if err := serve(apiSrv, apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("API server: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := serve(proxySrv, proxyLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("proxy: %w", err)
		}
	}()
	info := Info{APIURL: scheme + "://" + apiLn.Addr().String(), ProxyAddr: proxyLn.Addr().String(), DataDir: dataDir, TokenFile: TokenFile(dataDir)}
	if cfg.TLSSelfSigned {
		info.CAFile = SelfSignedCert(dataDir)
		log.Info("serving HTTPS with a self-signed certificate: have clients trust it, e.g. export SANDPIT_CA_FILE="+info.CAFile, "cert", info.CAFile)
	}
	log.Info("sandpit serving", "api", info.APIURL, "proxy", info.ProxyAddr, "domain", domain, "data_dir", dataDir,
		"runtime", rt.Name(), "run_as", user.Name, "sandboxes", len(sbs), "version", cfg.Version)
	if cfg.Started != nil {
		cfg.Started(info)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down (services keep running; a second signal forces)")
	case runErr = <-errc:
		log.Error("shutting down after a failure", "err", runErr)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	endStreams()
	_ = apiSrv.Shutdown(shutCtx)
	_ = proxySrv.Shutdown(shutCtx)
	px.CloseIdleConnections()
	stopRec()
	wg.Wait()
	log.Info("stopped")
	return runErr
}

// githubClient returns the GitHub API client of apiURL, with the token in
// tokenFile (read once; none when tokenFile is empty).
func githubClient(apiURL, tokenFile string) (*github.Client, error) {
	token := ""
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--github-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("--github-token-file %s is empty: put a GitHub token in it (pull requests: read, issues and commit statuses: write)", tokenFile)
		}
	}
	gh, err := github.NewClient(apiURL, token, nil)
	if err != nil {
		return nil, fmt.Errorf("--github-api-url: %w", err)
	}
	return gh, nil
}

// flushActivity writes the activity recorded in memory to the store every
// interval, and once more when ctx ends, so a restart forgets at most one
// interval of it.
func flushActivity(ctx context.Context, st store.Store, a *lifecycle.Activity, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		every = 5 * time.Second
	}
	flush := func(ctx context.Context) {
		dirty := a.Dirty()
		if len(dirty) == 0 {
			return
		}
		byID := map[string]time.Time{}
		for name, t := range dirty {
			if sb, err := st.GetSandboxByName(ctx, name); err == nil {
				byID[sb.ID] = t
			}
		}
		if err := st.TouchSandboxes(ctx, byID); err != nil {
			a.Requeue(dirty)
			log.Warn("record sandbox activity", "err", err)
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			flush(fctx)
			cancel()
			return
		case <-tick.C:
			flush(ctx)
		}
	}
}

func listen(addr, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("cannot listen on %s: the address is in use (another sandpit serve?); choose another with %s", addr, flag)
		}
		return nil, fmt.Errorf("cannot listen on %s (%s): %w", addr, flag, err)
	}
	return ln, nil
}

func parsePortRange(s string) (int, int, error) {
	if s == "" {
		return 20000, 29999, nil
	}
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("--port-range %q: write LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, e.g. 20000-29999", s)
	}
	return lo, hi, nil
}

// loadOrCreateToken returns the admin token, generating it (0600) on the
// first start. It is never logged.
func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 20 {
			return "", fmt.Errorf("admin token in %s is too short (%d characters): delete the file to have a new one generated", path, len(tok))
		}
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", fmt.Errorf("restrict %s to its owner: %w", path, err)
			}
		}
		return tok, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := "spt_" + hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", err
	}
	return tok, f.Close()
}

// lockDataDir makes sure one server at a time uses a data dir: two would
// each believe they own every sandbox in it.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "server.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another sandpit server (pid %s) is using data dir %s: stop it, or give this one another --data-dir", strings.TrimSpace(string(pid)), dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
