package render

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"sandpit.dev/sandpit/internal/template"
)

// DependencyVolumeSize is the size of a generated dependency's data
// volume.
var DependencyVolumeSize = resource.MustParse("1Gi")

// generate adds the objects sandpit makes itself: a Deployment and a
// Service for each template service the rendered objects do not already
// run, and a StatefulSet, Services and a Secret for each dependency.
func (r *renderer) generate() error {
	var errs []error
	for _, name := range r.t.ServiceOrder {
		if err := r.generateService(name); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.checkRoutes()...)
	for _, name := range r.t.DependencyOrder {
		if err := r.generateDependency(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// findLoaded returns the loaded (not generated) object of the kind with
// the name, or nil.
func (r *renderer) findLoaded(group, kind, name string) *object {
	for _, o := range r.objs {
		if !o.generated && o.group() == group && o.kind() == kind && o.u.GetName() == name {
			return o
		}
	}
	return nil
}

// serviceWorkload finds the Deployment or StatefulSet of the rendered
// objects that runs template service name: one labelled
// sandpit.dev/service=<name>, else one named like it.
func (r *renderer) serviceWorkload(name string) *object {
	var named *object
	for _, o := range r.objs {
		if o.generated || o.group() != "apps" || (o.kind() != "Deployment" && o.kind() != "StatefulSet") {
			continue
		}
		if o.u.GetLabels()[LabelService] == name {
			return o
		}
		if o.u.GetName() == name && named == nil {
			named = o
		}
	}
	return named
}

func (r *renderer) generateService(name string) error {
	s := r.t.Services[name]
	path := "services." + name
	if w := r.serviceWorkload(name); w != nil {
		w.service = name
		// Reach it at <name>.<namespace>.svc like a generated service,
		// unless the manifests have a Service of that name.
		if r.findLoaded("", "Service", name) == nil && hasNumberedPorts(s) {
			sel, _, _ := unstructured.NestedStringMap(w.u.Object, "spec", "selector", "matchLabels")
			if len(sel) > 0 {
				return r.add(r.service(name, s, sel), "generated for service "+name+" (selecting "+w.source+")", name, "")
			}
		}
		return nil
	}
	if s.Image == "" {
		return fmt.Errorf("%sservice %s has no image: the kubernetes runtime runs containers; add image: or define a Deployment named %s in kubernetes.*", at(r.t, path), name, name)
	}
	for i, p := range s.Ports {
		if p.Port == 0 {
			return fmt.Errorf("%s", r.portNeedsNumber(name, i))
		}
	}
	c, err := r.container(name, s)
	if err != nil {
		return err
	}
	labels := r.generatedLabels(LabelService, name)
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelService: name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
			},
		},
	}
	source := "generated for service " + name
	if err := r.add(d, source, name, ""); err != nil {
		return err
	}
	if len(s.Ports) == 0 || r.findLoaded("", "Service", name) != nil {
		return nil
	}
	return r.add(r.service(name, s, map[string]string{LabelService: name}), source, name, "")
}

func hasNumberedPorts(s *template.Service) bool {
	for _, p := range s.Ports {
		if p.Port != 0 {
			return true
		}
	}
	return false
}

// service is the ClusterIP Service of a template service: one port per
// numbered template port, named like it.
func (r *renderer) service(name string, s *template.Service, selector map[string]string) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: r.generatedLabels(LabelService, name)},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector},
	}
	for _, p := range s.Ports {
		if p.Port == 0 {
			continue
		}
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: p.Name, Port: int32(p.Port), TargetPort: intstr.FromInt32(int32(p.Port)), Protocol: corev1.ProtocolTCP,
		})
	}
	return svc
}

// container is a generated service's container: its image, its env (the
// template's under the service's, expanded), its ports and its ready
// probe.
func (r *renderer) container(name string, s *template.Service) (corev1.Container, error) {
	c := corev1.Container{Name: name, Image: r.serviceImages[name]}
	env := map[string]string{}
	for k, v := range r.t.Env {
		ev, err := r.expand("env."+k, v, "")
		if err != nil {
			return c, err
		}
		env[k] = ev
	}
	for k, v := range s.Env {
		ev, err := r.expand("services."+name+".env."+k, v, name)
		if err != nil {
			return c, err
		}
		env[k] = ev
	}
	for _, k := range sortedKeys(env) {
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: env[k]})
	}
	for _, p := range s.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: p.Name, ContainerPort: int32(p.Port), Protocol: corev1.ProtocolTCP})
	}
	if rp := s.Ready; rp != nil {
		probe := &corev1.Probe{PeriodSeconds: max(1, int32(rp.Interval.D().Seconds()))}
		switch {
		case rp.HTTP != nil:
			probe.HTTPGet = &corev1.HTTPGetAction{Path: cmpOr(rp.HTTP.Path, "/"), Port: intstr.FromString(rp.HTTP.Port)}
		case rp.TCP != nil:
			probe.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromString(rp.TCP.Port)}
		case rp.Exec != nil:
			cmd, err := r.expand("services."+name+".ready.exec.command", rp.Exec.Command, name)
			if err != nil {
				return c, err
			}
			probe.Exec = &corev1.ExecAction{Command: []string{"sh", "-c", cmd}}
		}
		c.ReadinessProbe = probe
	}
	return c, nil
}

// checkRoutes: the endpoint proxy reaches a routed port by its number.
func (r *renderer) checkRoutes() []error {
	var errs []error
	for _, ep := range r.t.EndpointOrder {
		e := r.t.Endpoints[ep]
		if e == nil {
			continue
		}
		for i, route := range e.Routes {
			svc, port, err := template.ParseTarget(route.To)
			if err != nil || r.t.Services[svc] == nil {
				continue
			}
			if _, ok := r.vars.Services[svc].Port(port); ok {
				continue // numbered, or exposed by a Service of the manifests
			}
			for j, p := range r.t.Services[svc].Ports {
				if p.Name == port {
					path := fmt.Sprintf("endpoints.%s.routes[%d].to", ep, i)
					errs = append(errs, fmt.Errorf("%s%s routes to %s: %s", at(r.t, path), path, route.To, r.portNeedsNumber(svc, j)))
				}
			}
		}
	}
	return errs
}

// generateDependency makes a PostgreSQL StatefulSet with its Services and
// the Secret holding its password.
func (r *renderer) generateDependency(name string) error {
	d := r.t.Dependencies[name]
	if d.Type != "postgres" {
		return fmt.Errorf("%sdependency %s is of type %q: the kubernetes runtime runs postgres only", at(r.t, "dependencies."+name+".type"), name, d.Type)
	}
	source := "generated for dependency " + name
	dv := r.vars.Dependencies[name]
	labels := r.generatedLabels(LabelDependency, name)
	selector := map[string]string{LabelDependency: name}
	secretName := name + "-postgres"
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			"username": []byte(dv.User),
			"password": []byte(dv.Password),
			"database": []byte(dv.Database),
			"url":      []byte(dv.URL()),
		},
	}
	if err := r.add(secret, source, "", name); err != nil {
		return err
	}
	port := corev1.ServicePort{Name: "postgres", Port: PostgresPort, TargetPort: intstr.FromString("postgres"), Protocol: corev1.ProtocolTCP}
	for _, svc := range []*corev1.Service{
		{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: []corev1.ServicePort{port}},
		},
		{
			// The StatefulSet's governing Service: stable pod DNS names.
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: name + "-headless", Labels: labels},
			Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: selector, Ports: []corev1.ServicePort{port}},
		},
	} {
		if err := r.add(svc, source, "", name); err != nil {
			return err
		}
	}
	const dataDir = "/var/lib/postgresql/data"
	c := corev1.Container{
		Name:  "postgres",
		Image: "postgres:" + d.Version,
		Env: []corev1.EnvVar{
			{Name: "PGDATA", Value: dataDir + "/pgdata"}, // a volume's root may hold lost+found
			{Name: "POSTGRES_DB", Value: dv.Database},
			{Name: "POSTGRES_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: secretName}, Key: "password",
			}}},
			{Name: "POSTGRES_USER", Value: dv.User},
		},
		Ports: []corev1.ContainerPort{{Name: "postgres", ContainerPort: PostgresPort, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
				Command: []string{"pg_isready", "-h", "127.0.0.1", "-U", dv.User, "-d", dv.Database},
			}},
			PeriodSeconds: 2,
		},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: dataDir}},
	}
	var volumes []corev1.Volume
	if len(d.Databases) > 1 {
		// The image creates POSTGRES_DB; the others are made by a script
		// it runs on first start.
		var sql strings.Builder
		for _, db := range d.Databases[1:] {
			fmt.Fprintf(&sql, "CREATE DATABASE %q;\n", db)
		}
		cm := &corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{Name: name + "-initdb", Labels: labels},
			Data:       map[string]string{"databases.sql": sql.String()},
		}
		if err := r.add(cm, source, "", name); err != nil {
			return err
		}
		volumes = append(volumes, corev1.Volume{Name: "initdb", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-initdb"}},
		}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "initdb", MountPath: "/docker-entrypoint-initdb.d", ReadOnly: true})
	}
	ss := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr(int32(1)),
			ServiceName: name + "-headless",
			Selector:    &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, Volumes: volumes},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceStorage: DependencyVolumeSize},
					},
				},
			}},
		},
	}
	if d.Snapshot != "" {
		// Seeding is the runtime's: this only says from what.
		ss.Annotations = map[string]string{AnnotationSnapshot: d.Snapshot}
	}
	return r.add(ss, source, "", name)
}

// generatedLabels are the labels of a generated object: the standard
// ones, and key=name for selecting its pods.
func (r *renderer) generatedLabels(key, name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":    name,
		"app.kubernetes.io/part-of": r.t.Name,
		LabelManagedBy:              "sandpit",
		key:                         name,
	}
}

// add converts a typed object and adds it as generated.
func (r *renderer) add(obj runtime.Object, source, service, dependency string) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return fmt.Errorf("render %s: %w", source, err)
	}
	delete(m, "status") // the API server's to write
	prune(m)
	r.objs = append(r.objs, &object{u: &unstructured.Unstructured{Object: m}, source: source, generated: true, service: service, dependency: dependency})
	return nil
}

// prune drops what the typed-to-unstructured conversion leaves behind for
// unset fields (creationTimestamp: null, status: {}, resources: {}), so
// the output says only what was meant. emptyDir: {} means something, and
// stays.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 && k != "emptyDir" {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
