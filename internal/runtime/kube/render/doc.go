// Package render turns a template and one sandbox's facts into the
// Kubernetes objects the kubernetes runtime applies to the sandbox's
// namespace. It is pure: it reads the sandbox's checkout (manifests, a
// kustomization, a Helm chart and its vendored subcharts) and nothing
// else, and never talks to an API server or the network. The same inputs
// give the same objects, in the same order, down to the byte of YAML.
//
// What it owns:
//
//   - reading kubernetes.manifests (plain YAML files), kubernetes.kustomize
//     (built in-process with the kustomize API, remote bases refused) and
//     kubernetes.helm (rendered in-process like `helm template`, chart
//     dependencies taken from the chart's charts/ folder only);
//   - generating a Deployment and a Service for each template service with
//     an image (unless the rendered objects already run it), and a
//     StatefulSet, Services and a Secret for each dependency;
//   - the per-sandbox overrides: namespace, labels and annotations, one
//     replica, images of template services, kubernetes.env,
//     kubernetes.config, Ingress hosts, and the sandbox's resource budget
//     (a ResourceQuota, a LimitRange and per-container defaults);
//   - refusing cluster-scoped objects the server does not allow, and
//     prefixing the names of those it does with the namespace.
//
// What it must not do: import client-go clientsets or anything that
// reaches an API server, the store, or other runtimes. Applying, pruning,
// readiness and the sandbox lifecycle belong to internal/runtime/kube.
package render
