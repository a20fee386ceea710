// Package kube is the Kubernetes runtime: each sandbox is one namespace,
// built from the objects package render makes out of the template (the
// team's own manifests, kustomization or Helm chart, plus what the template
// generates) and applied with server-side apply under the field manager
// "sandpit".
//
// Everything the runtime needs to re-adopt a sandbox after a restart lives
// in the cluster, on the namespace: labels say which Sandpit installation
// and which sandbox own it, and an annotation lists every object the last
// apply made (an apply set), so that objects a new render no longer
// contains are pruned even across restarts. Suspend scales workloads to
// zero and keeps their replica counts in annotations; delete deletes the
// namespace and waits until it is gone.
//
// It imports client-go and the render package; it must not import the
// store, the reconciler or the API.
package kube
