package render

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// override applies the per-sandbox changes to every object: one replica,
// the template services' images, kubernetes.env, kubernetes.config,
// Ingress hosts and the resource budget.
func (r *renderer) override() error {
	env, err := r.kubeEnv()
	if err != nil {
		return err
	}
	for _, o := range r.objs {
		if o.group() == "apps" && (o.kind() == "Deployment" || o.kind() == "StatefulSet" || o.kind() == "ReplicaSet") {
			o.u.Object["spec"] = mapAt(o.u.Object, "spec")
			o.u.Object["spec"].(map[string]any)["replicas"] = int64(1)
		}
		if o.generated && o.dependency != "" {
			continue // sandpit's own database: not the application's containers
		}
		for _, spec := range podSpecs(o) {
			for _, c := range containers(spec, "initContainers", "containers") {
				if img, ok := c["image"].(string); ok {
					if repl := r.images[imageRepository(img)]; repl != "" {
						c["image"] = repl
					}
				}
				setEnv(c, env)
			}
		}
		if o.group() == "networking.k8s.io" && o.kind() == "Ingress" && r.opts.Host != nil {
			r.ingressHosts(o)
		}
	}
	if err := r.config(); err != nil {
		return err
	}
	return r.resources()
}

// envVar is one kubernetes.env entry, expanded.
type envVar struct{ name, value string }

func (r *renderer) kubeEnv() ([]envVar, error) {
	k := r.t.Kubernetes
	if k == nil {
		return nil, nil
	}
	var out []envVar
	for _, name := range sortedKeys(k.Env) {
		v, err := r.expand("kubernetes.env."+name, k.Env[name], "")
		if err != nil {
			return nil, err
		}
		out = append(out, envVar{name, v})
	}
	return out, nil
}

// setEnv sets env on a container: an entry of the same name is replaced
// where it stands (its valueFrom dropped), the others are appended.
func setEnv(c map[string]any, env []envVar) {
	if len(env) == 0 {
		return
	}
	list, _ := c["env"].([]any)
	for _, e := range env {
		found := false
		for i, item := range list {
			if m, ok := item.(map[string]any); ok && m["name"] == e.name {
				list[i] = map[string]any{"name": e.name, "value": e.value}
				found = true
			}
		}
		if !found {
			list = append(list, map[string]any{"name": e.name, "value": e.value})
		}
	}
	c["env"] = list
}

// kustomizeHashRE matches the suffix kustomize's generators add to a
// ConfigMap's name ("app-config-5fm8h9c6k2").
var kustomizeHashRE = regexp.MustCompile(`^-[a-z0-9]{10}$`)

// config sets the keys of kubernetes.config. A ConfigMap is found by its
// name, or by its name plus the hash suffix kustomize's configMapGenerator
// adds.
func (r *renderer) config() error {
	k := r.t.Kubernetes
	if k == nil {
		return nil
	}
	var errs []error
	for _, name := range sortedKeys(k.Config) {
		var found []*object
		for _, o := range r.objs {
			if o.group() != "" || o.kind() != "ConfigMap" {
				continue
			}
			n := o.u.GetName()
			if n == name || strings.HasPrefix(n, name) && kustomizeHashRE.MatchString(n[len(name):]) {
				found = append(found, o)
			}
		}
		if len(found) == 0 {
			var names []string
			for _, o := range r.objs {
				if o.group() == "" && o.kind() == "ConfigMap" {
					names = append(names, o.u.GetName())
				}
			}
			list := "there are none"
			if len(names) > 0 {
				list = "there are " + strings.Join(names, ", ")
			}
			path := "kubernetes.config." + name
			errs = append(errs, fmt.Errorf("%s%s: the rendered objects have no ConfigMap named %s (%s): set keys of an existing ConfigMap, or add it to the manifests",
				at(r.t, path), path, name, list))
			continue
		}
		for _, key := range sortedKeys(k.Config[name]) {
			path := "kubernetes.config." + name + "." + key
			v, err := r.expand(path, k.Config[name][key], "")
			if err != nil {
				return err
			}
			for _, o := range found {
				data := mapAt(o.u.Object, "data")
				data[key] = v
				o.u.Object["data"] = data
				if bin, ok := o.u.Object["binaryData"].(map[string]any); ok {
					delete(bin, key)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ingressHosts rewrites each host to the sandbox's: "shop.example.com"
// becomes Host("shop"). Wildcard hosts are left alone.
func (r *renderer) ingressHosts(o *object) {
	spec, _ := o.u.Object["spec"].(map[string]any)
	if spec == nil {
		return
	}
	rewrite := func(h string) string {
		if h == "" || strings.HasPrefix(h, "*") {
			return h
		}
		label, _, _ := strings.Cut(h, ".")
		return r.opts.Host(label)
	}
	rules, _ := spec["rules"].([]any)
	for _, rule := range rules {
		if m, ok := rule.(map[string]any); ok {
			if h, ok := m["host"].(string); ok {
				m["host"] = rewrite(h)
			}
		}
	}
	tls, _ := spec["tls"].([]any)
	for _, t := range tls {
		m, ok := t.(map[string]any)
		if !ok {
			continue
		}
		hosts, _ := m["hosts"].([]any)
		for i, h := range hosts {
			if s, ok := h.(string); ok {
				hosts[i] = rewrite(s)
			}
		}
	}
}

// resources spreads the sandbox's budget: a ResourceQuota caps the
// namespace's requests at the budget (and its limits at twice it, see
// below); a LimitRange gives every container
// without limits an equal share (and requests of half that); containers of
// the render that have no resources get the same share written in, so
// that what is applied says what runs.
func (r *renderer) resources() error {
	b := r.opts.Resources
	if b == nil || (b.CPUMilli <= 0 && b.MemoryBytes <= 0) {
		return nil
	}
	n := int64(0)
	for _, o := range r.objs {
		for _, spec := range podSpecs(o) {
			n += int64(len(containers(spec, "containers")))
		}
	}
	n = max(n, 1)
	// The quota caps requests at the budget and limits at twice it: each
	// container requests half its share, so a rolling update's surge pod
	// (a new ReplicaSet's pod before the old one goes) still fits. A
	// quota of exactly the budget would leave every rollout stuck at
	// "exceeded quota".
	hard := corev1.ResourceList{}
	limit, request := corev1.ResourceList{}, corev1.ResourceList{}
	if b.CPUMilli > 0 {
		hard[corev1.ResourceRequestsCPU] = *resource.NewMilliQuantity(b.CPUMilli, resource.DecimalSI)
		hard[corev1.ResourceLimitsCPU] = *resource.NewMilliQuantity(2*b.CPUMilli, resource.DecimalSI)
		share := max(b.CPUMilli/n, 2)
		limit[corev1.ResourceCPU] = *resource.NewMilliQuantity(share, resource.DecimalSI)
		request[corev1.ResourceCPU] = *resource.NewMilliQuantity(share/2, resource.DecimalSI)
	}
	if b.MemoryBytes > 0 {
		hard[corev1.ResourceRequestsMemory] = *resource.NewQuantity(b.MemoryBytes, resource.BinarySI)
		hard[corev1.ResourceLimitsMemory] = *resource.NewQuantity(2*b.MemoryBytes, resource.BinarySI)
		limit[corev1.ResourceMemory] = memoryQuantity(b.MemoryBytes / n)
		request[corev1.ResourceMemory] = memoryQuantity(b.MemoryBytes / n / 2)
	}
	labels := map[string]string{LabelManagedBy: "sandpit"}
	var annotations map[string]string
	if b.Class != "" {
		annotations = map[string]string{"sandpit.dev/resource-class": b.Class}
	}
	source := "generated for the sandbox's resources"
	quota := &corev1.ResourceQuota{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ResourceQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: QuotaName, Labels: labels, Annotations: annotations},
		Spec:       corev1.ResourceQuotaSpec{Hard: hard},
	}
	lr := &corev1.LimitRange{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "LimitRange"},
		ObjectMeta: metav1.ObjectMeta{Name: LimitRangeName, Labels: labels, Annotations: annotations},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer, Default: limit, DefaultRequest: request,
		}}},
	}
	// Containers without resources get the share; initContainers run
	// before the others and get it too.
	limitMap, requestMap := quantities(limit), quantities(request)
	for _, o := range r.objs {
		for _, spec := range podSpecs(o) {
			for _, c := range containers(spec, "initContainers", "containers") {
				if res, ok := c["resources"].(map[string]any); ok && (res["limits"] != nil || res["requests"] != nil) {
					continue
				}
				c["resources"] = map[string]any{"limits": copyMap(limitMap), "requests": copyMap(requestMap)}
			}
		}
	}
	if err := r.add(quota, source, "", ""); err != nil {
		return err
	}
	return r.add(lr, source, "", "")
}

// memoryQuantity rounds down to whole MiB where that is at least 1 MiB,
// so the YAML reads 170Mi rather than 178956970.
func memoryQuantity(b int64) resource.Quantity {
	const mi = 1 << 20
	if b >= mi {
		b = b / mi * mi
	}
	return *resource.NewQuantity(b, resource.BinarySI)
}

func quantities(l corev1.ResourceList) map[string]any {
	m := map[string]any{}
	for k, v := range l {
		m[string(k)] = v.String()
	}
	return m
}

func copyMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// finish sets what every object gets: the namespace (namespaced objects)
// or a namespace-prefixed name (cluster-scoped ones), the labels and
// annotations of opts, and labels on pod templates.
func (r *renderer) finish() {
	ns := r.opts.Namespace
	renamed := map[string]string{} // ClusterRole names
	for _, o := range r.objs {
		if o.clusterScoped() {
			old := o.u.GetName()
			o.u.SetName(ns + "-" + old)
			unstructuredRemoveNamespace(o)
			if o.group() == "rbac.authorization.k8s.io" && o.kind() == "ClusterRole" {
				renamed[old] = o.u.GetName()
			}
		} else {
			o.u.SetNamespace(ns)
		}
		if len(r.opts.Labels) > 0 {
			labels := o.u.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			for k, v := range r.opts.Labels {
				labels[k] = v
			}
			o.u.SetLabels(labels)
			for _, tmpl := range podTemplates(o) {
				meta := mapAt(tmpl, "metadata")
				tl := mapAt(meta, "labels")
				for k, v := range r.opts.Labels {
					tl[k] = v
				}
				meta["labels"] = tl
				tmpl["metadata"] = meta
			}
		}
		if len(r.opts.Annotations) > 0 {
			ann := o.u.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			for k, v := range r.opts.Annotations {
				ann[k] = v
			}
			o.u.SetAnnotations(ann)
		}
	}
	// RBAC: bindings follow renamed ClusterRoles; ServiceAccounts are the
	// sandbox's own.
	for _, o := range r.objs {
		if o.group() != "rbac.authorization.k8s.io" || (o.kind() != "RoleBinding" && o.kind() != "ClusterRoleBinding") {
			continue
		}
		if ref, ok := o.u.Object["roleRef"].(map[string]any); ok && ref["kind"] == "ClusterRole" {
			if n, ok := ref["name"].(string); ok && renamed[n] != "" {
				ref["name"] = renamed[n]
			}
		}
		subjects, _ := o.u.Object["subjects"].([]any)
		for _, s := range subjects {
			if m, ok := s.(map[string]any); ok && m["kind"] == "ServiceAccount" {
				m["namespace"] = ns
			}
		}
	}
}

func unstructuredRemoveNamespace(o *object) {
	if meta, ok := o.u.Object["metadata"].(map[string]any); ok {
		delete(meta, "namespace")
	}
}

// mapAt returns m[key] as a mapping, a new one when it is missing (the
// caller stores it back).
func mapAt(m map[string]any, key string) map[string]any {
	if v, ok := m[key].(map[string]any); ok {
		return v
	}
	return map[string]any{}
}

// podTemplates returns the live pod templates of a workload (the
// mappings holding metadata and spec), or nil.
func podTemplates(o *object) []map[string]any {
	get := func(m map[string]any, keys ...string) map[string]any {
		for _, k := range keys {
			next, ok := m[k].(map[string]any)
			if !ok {
				return nil
			}
			m = next
		}
		return m
	}
	switch {
	case o.group() == "apps" && (o.kind() == "Deployment" || o.kind() == "StatefulSet" || o.kind() == "DaemonSet" || o.kind() == "ReplicaSet"),
		o.group() == "batch" && o.kind() == "Job",
		o.group() == "" && o.kind() == "ReplicationController",
		o.group() == "" && o.kind() == "PodTemplate":
		if o.kind() == "PodTemplate" {
			if t := get(o.u.Object, "template"); t != nil {
				return []map[string]any{t}
			}
			return nil
		}
		if t := get(o.u.Object, "spec", "template"); t != nil {
			return []map[string]any{t}
		}
	case o.group() == "batch" && o.kind() == "CronJob":
		if t := get(o.u.Object, "spec", "jobTemplate", "spec", "template"); t != nil {
			return []map[string]any{t}
		}
	}
	return nil
}

// podSpecs returns the live pod specs of an object: its pod templates'
// specs, or a Pod's own.
func podSpecs(o *object) []map[string]any {
	if o.group() == "" && o.kind() == "Pod" {
		if s, ok := o.u.Object["spec"].(map[string]any); ok {
			return []map[string]any{s}
		}
		return nil
	}
	var out []map[string]any
	for _, t := range podTemplates(o) {
		if s, ok := t["spec"].(map[string]any); ok {
			out = append(out, s)
		}
	}
	return out
}

// containers returns the live containers of a pod spec under the keys.
func containers(spec map[string]any, keys ...string) []map[string]any {
	var out []map[string]any
	for _, k := range keys {
		list, _ := spec[k].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}
