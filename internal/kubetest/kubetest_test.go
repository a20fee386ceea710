package kubetest

import (
	"context"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// The control plane works as the kube runtime's tests need it to: a
// Deployment's pods are scheduled onto the kwok node and become Available,
// and a deleted namespace goes away (the namespace controller runs).
func TestClusterRunsDeploymentsAndDeletesNamespaces(t *testing.T) {
	c := Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs := c.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest-smoke"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns.Name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example/web:1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns.Name).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		d, err := cs.AppsV1().Deployments(ns.Name).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.AvailableReplicas == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("deployment not available: %+v\ncontroller-manager:%s\nkwok:%s", d.Status, c.Logs("kube-controller-manager", 20), c.Logs("kwok", 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		if err != nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("namespace still there")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
