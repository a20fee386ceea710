package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/kubetest"
	"sandpit.dev/sandpit/internal/sandbox"
)

const kubeTemplate = `apiVersion: sandpit/v1
name: shop
source: {path: .}
services:
  api:
    image: registry.example.com/shop-api:${git.sha}
    ports: [{name: http, port: 8080}]
dependencies:
  db: {type: postgres, version: "15"}
endpoints:
  app:
    routes: [{path: /, to: api:http}]
kubernetes:
  manifests: k8s
`

// kubeShop writes the kube runtime's test shop (production manifests plus
// a template) into a fresh git repository and returns the template's path.
func kubeShop(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(repoRoot, "internal/runtime/kube/testdata/shop")+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy the shop: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "sandpit.yaml"), []byte(kubeTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"}, {"add", "-A"},
		{"-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "shop"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	return filepath.Join(dir, "sandpit.yaml")
}

// The server runs sandboxes on a real cluster; killed with SIGKILL while
// a sandbox's objects are being applied and rolled out, it converges after
// a restart (same namespace, nothing duplicated), deletes the namespace of
// a sandbox that no longer exists (the orphan sweep at start), and a
// delete leaves no namespace behind.
func TestKubeServerKilledMidCreateConverges(t *testing.T) {
	c := kubetest.Get(t)
	inst := "e2e-" + strings.TrimPrefix(sandbox.NewID(), "sb-")[:8]
	s := newServer(t, "--runtime", "kubernetes", "--kubeconfig", c.Kubeconfig, "--kube-instance", inst)
	s.mustCLI("template", "apply", "-f", kubeShop(t))
	s.mustCLI("create", "k1", "--template", "shop")
	s.waitStage("k1", "ready", 2*time.Minute)
	k1, err := s.client.GetSandbox(context.Background(), "k1")
	if err != nil {
		t.Fatal(err)
	}
	ns := "sandpit-" + k1.ID
	s.kill()
	t.Log("server killed while k1 rolls out")

	// While it is down, a namespace of this installation appears whose
	// sandbox the server never had (a crash between namespace and
	// record, or a record restored from an older backup).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	orphanID := sandbox.NewID()
	orphan := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sandpit-" + orphanID, Labels: map[string]string{
		"app.kubernetes.io/managed-by": "sandpit", "sandpit.dev/instance": inst, "sandpit.dev/sandbox-id": orphanID,
	}}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// And one of another installation, which must be left alone.
	otherID := sandbox.NewID()
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sandpit-" + otherID, Labels: map[string]string{
		"app.kubernetes.io/managed-by": "sandpit", "sandpit.dev/instance": inst + "-other", "sandpit.dev/sandbox-id": otherID,
	}}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer c.Client.CoreV1().Namespaces().Delete(context.Background(), other.Name, metav1.DeleteOptions{})

	s.start()
	k1 = s.waitPhase("k1", client.PhaseReady, 2*time.Minute)
	if k1.Status.SHA == "" {
		t.Errorf("no commit recorded: %+v", k1.Status)
	}
	deps, err := c.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, d := range deps.Items {
		names[d.Name]++
		if d.Status.AvailableReplicas != 1 {
			t.Errorf("deployment %s: %d available", d.Name, d.Status.AvailableReplicas)
		}
	}
	if len(deps.Items) != 2 || names["api"] != 1 || names["worker"] != 1 {
		t.Errorf("deployments after the restart: %v, want api and worker once each", names)
	}
	waitNamespaceGone(t, c, orphan.Name, 2*time.Minute)
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, other.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("another installation's namespace was touched: %v", err)
	}

	// render shows what was applied, secrets redacted.
	out := s.mustCLI("render", "k1")
	for _, want := range []string{"kind: Deployment", "namespace: " + ns, "registry.example.com/shop-api:" + k1.Status.SHA, "REDACTED", "host: shop--k1.localhost"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
	creds, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "sandpit-credentials", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pw := string(creds.Data["db"]); pw == "" || strings.Contains(out, pw) {
		t.Errorf("render shows the database password (or there is none: %q)", pw)
	}

	s.mustCLI("delete", "k1", "--wait")
	waitNamespaceGone(t, c, ns, 30*time.Second)
	if _, err := s.client.GetSandbox(ctx, "k1"); err == nil {
		t.Errorf("k1's record is still there")
	}
}

func waitNamespaceGone(t *testing.T, c *kubetest.Cluster, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, err := c.Client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still there after %s (err %v)", name, within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
