// Package kubetest starts a real Kubernetes control plane on loopback for
// tests and benchmarks: etcd (Debian's etcd-server), kube-apiserver,
// kube-controller-manager and kube-scheduler (built from k8s.io/kubernetes
// by scripts/lib.sh into a cache folder), and kwok, which plays the kubelet
// of one fake node so that scheduled pods report Running and Ready and
// Deployments become Available. Nothing in a pod really runs: there is no
// container runtime on the machines Sandpit is tested on.
//
// The binaries are looked up in $SANDPIT_KUBE_BIN (default
// /var/tmp/sandpit-kube/v1.31.4) and then on PATH. When they are missing,
// Require skips the test with a message saying how to get them, unless
// CI=true, when it fails: the CI job must run these tests.
//
// Only tests and bench/ import it. Production code must not.
package kubetest
