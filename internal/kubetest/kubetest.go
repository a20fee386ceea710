package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Version is the Kubernetes version scripts/lib.sh builds.
const Version = "v1.31.4"

// FakeNode is the name of the node kwok manages.
const FakeNode = "kwok-node-0"

// BinDir is where the control-plane binaries are looked up first.
func BinDir() string {
	if d := os.Getenv("SANDPIT_KUBE_BIN"); d != "" {
		return d
	}
	return "/var/tmp/sandpit-kube/" + Version
}

// binaries the control plane needs; kubectl is optional (benchmarks).
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// Lookup finds a binary in BinDir, then on PATH.
func Lookup(name string) (string, error) {
	p := filepath.Join(BinDir(), name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s or on PATH: run ./scripts/test.sh (or `. scripts/lib.sh; install_kube_tools`) to build it", name, BinDir())
}

// Missing lists the control-plane binaries that cannot be found.
func Missing() []string {
	var out []string
	for _, b := range binaries {
		if _, err := Lookup(b); err != nil {
			out = append(out, b)
		}
	}
	return out
}

// Require skips t when the binaries are missing, or fails it under CI=true.
func Require(t testing.TB) {
	t.Helper()
	if m := Missing(); len(m) > 0 {
		msg := fmt.Sprintf("Kubernetes control-plane binaries missing (%s); run `. scripts/lib.sh; install_kube_tools` to build them into %s", strings.Join(m, ", "), BinDir())
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// Options tunes the cluster.
type Options struct {
	// Dir holds data, certificates and logs; empty means a new temporary
	// directory under /var/tmp, removed by Stop.
	Dir string
	// NoScheduler leaves out kube-scheduler and kwok: pods stay Pending.
	NoScheduler bool
	// Log receives one line per component started (nil: silent).
	Log func(format string, args ...any)
}

// Cluster is a running control plane.
type Cluster struct {
	// Config reaches the API server as a system:masters user.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same user.
	Kubeconfig string
	// Token is the bearer token in Kubeconfig.
	Token string
	// Client is a clientset built from Config.
	Client kubernetes.Interface
	Dir    string
	URL    string

	ownDir          bool
	stopProvisioner context.CancelFunc
	mu              sync.Mutex
	procs           []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Start starts etcd, the API server, the controller manager and, unless
// opts.NoScheduler, the scheduler, kwok and one fake node. It returns once
// the API server is ready and the node exists. Call Stop when done.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if m := Missing(); len(m) > 0 {
		return nil, fmt.Errorf("kubetest: missing %s; run `. scripts/lib.sh; install_kube_tools`", strings.Join(m, ", "))
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &Cluster{Dir: opts.Dir}
	if c.Dir == "" {
		d, err := os.MkdirTemp("/var/tmp", "sandpit-kubetest-")
		if err != nil {
			return nil, err
		}
		c.Dir, c.ownDir = d, true
	} else if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	// Any early return stops what was started so far; a local flag (not a
	// named result) because every error path returns a nil *Cluster.
	started := false
	defer func() {
		if !started {
			c.Stop()
		}
	}()
	etcdPort, peerPort, apiPort, cmPort, schedPort := freePort(), freePort(), freePort(), freePort(), freePort()

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	if err := c.start("etcd",
		"--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(peerPort),
		// The data is throwaway: do not fsync every write (etcd on a
		// shared 2-core VM otherwise dominates every test's time).
		"--unsafe-no-fsync",
		"--quota-backend-bytes", strconv.Itoa(4<<30),
	); err != nil {
		return nil, err
	}
	logf("etcd on %s", etcdURL)

	certDir := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	saKey := filepath.Join(certDir, "sa.key")
	saPub := filepath.Join(certDir, "sa.pub")
	if err := writeKeyPair(saKey, saPub); err != nil {
		return nil, err
	}
	c.Token = randomHex(16)
	tokens := filepath.Join(certDir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	if err := c.start("kube-apiserver",
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", certDir,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saPub,
		"--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens,
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", "10.0.0.0/16",
		// TaintNodesByCondition would taint the fake node not-ready at
		// creation, and the node lifecycle controller that lifts the taint
		// does not run here.
		"--disable-admission-plugins", "ServiceAccount,TaintNodesByCondition",
		// Benchmarks create thousands of objects from one client.
		"--max-requests-inflight", "1600", "--max-mutating-requests-inflight", "800",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	); err != nil {
		return nil, err
	}
	c.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.Config = &rest.Config{
		Host:            c.URL,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             500,
		Burst:           1000,
	}
	if err := c.waitReady(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	logf("kube-apiserver on %s", c.URL)
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(KubeconfigYAML(c.URL, c.Token, "")), 0o600); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	c.Client = client

	if err := c.start("kube-controller-manager",
		"--kubeconfig", c.Kubeconfig,
		"--controllers", "*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle,-attachdetach",
		"--service-account-private-key-file", saKey,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(cmPort),
		"--concurrent-namespace-syncs", "20",
		"--concurrent-deployment-syncs", "20", "--concurrent-replicaset-syncs", "20",
		"--concurrent-gc-syncs", "40",
		"--kube-api-qps", "400", "--kube-api-burst", "800",
	); err != nil {
		return nil, err
	}
	logf("kube-controller-manager started")
	if opts.NoScheduler {
		started = true
		return c, nil
	}
	if err := c.start("kube-scheduler",
		"--kubeconfig", c.Kubeconfig,
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(schedPort),
		"--kube-api-qps", "400", "--kube-api-burst", "800",
	); err != nil {
		return nil, err
	}
	if err := c.start("kwok",
		"--kubeconfig", c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--manage-nodes-with-label-selector=",
		"--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
		"--disregard-status-with-label-selector=",
		"--cidr=10.0.0.1/24", "--node-ip=10.0.0.1",
		"--server-address=127.0.0.1:"+strconv.Itoa(freePort()),
	); err != nil {
		return nil, err
	}
	if err := c.createNode(ctx); err != nil {
		return nil, err
	}
	pctx, stop := context.WithCancel(context.Background())
	c.stopProvisioner = stop
	go c.provision(pctx)
	logf("kube-scheduler and kwok started; node %s", FakeNode)
	started = true
	return c, nil
}

// KubeconfigYAML is a kubeconfig for server and token; namespace may be "".
func KubeconfigYAML(server, token, namespace string) string {
	ns := ""
	if namespace != "" {
		ns = "\n    namespace: " + namespace
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: admin%s
current-context: test
`, server, token, ns)
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        FakeNode,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels:      map[string]string{"kubernetes.io/hostname": FakeNode, "kubernetes.io/os": "linux", "type": "kwok"},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("1000"),
				corev1.ResourceMemory: resource.MustParse("4Ti"),
				corev1.ResourcePods:   resource.MustParse("100000"),
			},
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("1000"),
				corev1.ResourceMemory: resource.MustParse("4Ti"),
				corev1.ResourcePods:   resource.MustParse("100000"),
			},
		},
	}
	_, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create fake node: %w", err)
	}
	return nil
}

func (c *Cluster) start(name string, args ...string) error {
	bin, err := Lookup(name)
	if err != nil {
		return err
	}
	logPath := filepath.Join(c.Dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group, and die with the test binary: a killed test must
	// not leave a control plane behind.
	// Pdeathsig fires when the *thread* that started the process exits,
	// so start and wait on one locked thread that lives as long as it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			_ = cmd.Wait()
		}
		close(p.done)
	}()
	err = <-started
	lf.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	// A component that dies at once (bad flag) is reported now.
	select {
	case <-p.done:
		return fmt.Errorf("%s exited at once: %s", name, tail(logPath, 20))
	case <-time.After(150 * time.Millisecond):
	}
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, limit time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after %s: %s", limit, tail(filepath.Join(c.Dir, "kube-apiserver.log"), 30))
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited: %s", p.name, tail(p.log, 30))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Logs returns the last lines of a component's log, for failure messages.
func (c *Cluster) Logs(component string, lines int) string {
	return tail(filepath.Join(c.Dir, component+".log"), lines)
}

// Stop stops every component (newest first) and removes the directory it
// created.
func (c *Cluster) Stop() {
	if c.stopProvisioner != nil {
		c.stopProvisioner()
	}
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if c.ownDir {
		_ = os.RemoveAll(c.Dir)
	}
}

// Shared starts one cluster per test binary, on first use, stopped by Main.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Get returns the test binary's shared cluster, starting it on first use;
// it skips or fails t as Require does when the binaries are missing. Tests
// that use it keep to their own namespaces. Call Main from TestMain so the
// cluster is stopped at the end.
func Get(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.c, shared.err = Start(ctx, Options{})
	})
	if shared.err != nil {
		t.Fatalf("start the test cluster: %v", shared.err)
	}
	return shared.c
}

// Main runs the tests and then stops the shared cluster, if one started.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.c != nil {
		shared.c.Stop()
	}
	return code
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeKeyPair(keyPath, pubPath string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n" + string(bytes.Join(lines, []byte("\n")))
}

// provision plays a storage provisioner: every pending claim gets a
// hostPath volume made for it, bound by the controller manager's volume
// binder, and released volumes are deleted. Nothing mounts them (no
// kubelet); StatefulSets need their claims bound to be scheduled.
func (c *Cluster) provision(ctx context.Context) {
	for ctx.Err() == nil {
		pvcs, err := c.Client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, pvc := range pvcs.Items {
				if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
					continue
				}
				size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
				if size.IsZero() {
					size = resource.MustParse("1Gi")
				}
				pv := &corev1.PersistentVolume{
					ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(pvc.UID), Labels: map[string]string{"kubetest": "provisioned"}},
					Spec: corev1.PersistentVolumeSpec{
						Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
						AccessModes:                   pvc.Spec.AccessModes,
						PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
						StorageClassName:              ptrOr(pvc.Spec.StorageClassName),
						PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/kubetest/" + string(pvc.UID)}},
						ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
					},
				}
				_, _ = c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
			}
		}
		pvs, err := c.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: "kubetest=provisioned"})
		if err == nil {
			for _, pv := range pvs.Items {
				if pv.Status.Phase == corev1.VolumeReleased || pv.Status.Phase == corev1.VolumeFailed {
					_ = c.Client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func ptrOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
