package kube

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
)

// rollout is one workload's progress.
type rollout struct {
	Kind, Name string
	Ready      bool
	// Failed is set when the rollout cannot succeed (a Job failed, a
	// Deployment exceeded its progress deadline).
	Failed bool
	// Message says what it waits for, naming the condition or pod that
	// blocks it.
	Message  string
	Restarts int
	Replicas int32
}

// waitReady polls the workloads among objs until every one has rolled out,
// reporting each new blocking condition as an event and the namespace's
// warning events as they appear.
func (r *Runtime) waitReady(ctx context.Context, id string, objs []*unstructured.Unstructured, p runtime.Progress) error {
	ns := r.Namespace(id)
	var want []rollout
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment", "StatefulSet", "Job":
			want = append(want, rollout{Kind: o.GetKind(), Name: o.GetName()})
		}
	}
	deadline := time.Now().Add(r.cfg.ReadyTimeout)
	since := time.Now().Add(-time.Second)
	seenEvents := map[string]bool{}
	lastMsg := map[string]string{}
	for {
		pending := 0
		var blocking []string
		for _, w := range want {
			st, err := r.rolloutStatus(ctx, ns, w.Kind, w.Name)
			if err != nil {
				return err
			}
			if st.Failed {
				return runtime.Permanent(fmt.Errorf("%s: %s", kindName(w.Kind, w.Name), st.Message))
			}
			if st.Ready {
				continue
			}
			pending++
			msg := kindName(w.Kind, w.Name) + ": " + st.Message
			blocking = append(blocking, msg)
			if lastMsg[w.Name+w.Kind] != st.Message {
				lastMsg[w.Name+w.Kind] = st.Message
				p.Event(sandbox.EventNormal, "Waiting", msg)
			}
		}
		r.forwardEvents(ctx, ns, since, seenEvents, p)
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not rolled out after %s: %s", r.cfg.ReadyTimeout, strings.Join(blocking, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.Poll):
		}
	}
}

// forwardEvents passes the namespace's new Warning events on.
func (r *Runtime) forwardEvents(ctx context.Context, ns string, since time.Time, seen map[string]bool, p runtime.Progress) {
	evs, err := r.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		return
	}
	sort.Slice(evs.Items, func(i, j int) bool { return eventTime(evs.Items[i]).Before(eventTime(evs.Items[j])) })
	for _, e := range evs.Items {
		key := string(e.UID) + "/" + fmt.Sprint(e.Count)
		if seen[key] || eventTime(e).Before(since) {
			continue
		}
		seen[key] = true
		p.Event(sandbox.EventWarning, e.Reason, fmt.Sprintf("%s: %s", kindName(e.InvolvedObject.Kind, e.InvolvedObject.Name), e.Message))
	}
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func (r *Runtime) rolloutStatus(ctx context.Context, ns, kind, name string) (rollout, error) {
	st := rollout{Kind: kind, Name: name}
	switch kind {
	case "Deployment":
		d, err := r.cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return st, notFoundOK(err, &st)
		}
		return r.deploymentStatus(ctx, d), nil
	case "StatefulSet":
		s, err := r.cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return st, notFoundOK(err, &st)
		}
		return r.statefulSetStatus(ctx, s), nil
	case "Job":
		j, err := r.cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return st, notFoundOK(err, &st)
		}
		return jobStatus(j), nil
	}
	st.Ready = true
	return st, nil
}

func notFoundOK(err error, st *rollout) error {
	if isNotFound(err) {
		st.Message = "not created yet"
		return nil
	}
	return err
}

func (r *Runtime) deploymentStatus(ctx context.Context, d *appsv1.Deployment) rollout {
	st := rollout{Kind: "Deployment", Name: d.Name, Replicas: 1}
	if d.Spec.Replicas != nil {
		st.Replicas = *d.Spec.Replicas
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			st.Failed, st.Message = true, c.Message
			return st
		}
	}
	switch {
	case d.Status.ObservedGeneration < d.Generation:
		st.Message = "waiting for the deployment controller to see the new spec"
	case d.Status.UpdatedReplicas < st.Replicas:
		st.Message = fmt.Sprintf("%d of %d replicas updated", d.Status.UpdatedReplicas, st.Replicas)
	case d.Status.Replicas > d.Status.UpdatedReplicas:
		st.Message = fmt.Sprintf("%d old replicas still terminating", d.Status.Replicas-d.Status.UpdatedReplicas)
	case d.Status.AvailableReplicas < st.Replicas:
		st.Message = fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, st.Replicas)
	default:
		st.Ready = true
	}
	st.Restarts = r.podRestarts(ctx, d.Namespace, d.Spec.Selector, &st)
	return st
}

func (r *Runtime) statefulSetStatus(ctx context.Context, s *appsv1.StatefulSet) rollout {
	st := rollout{Kind: "StatefulSet", Name: s.Name, Replicas: 1}
	if s.Spec.Replicas != nil {
		st.Replicas = *s.Spec.Replicas
	}
	switch {
	case s.Status.ObservedGeneration < s.Generation:
		st.Message = "waiting for the statefulset controller to see the new spec"
	case s.Status.ReadyReplicas < st.Replicas:
		st.Message = fmt.Sprintf("%d of %d replicas ready", s.Status.ReadyReplicas, st.Replicas)
	case s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType && s.Status.UpdateRevision != "" && s.Status.CurrentRevision != s.Status.UpdateRevision && s.Status.UpdatedReplicas < st.Replicas:
		st.Message = fmt.Sprintf("%d of %d replicas updated", s.Status.UpdatedReplicas, st.Replicas)
	default:
		st.Ready = true
	}
	st.Restarts = r.podRestarts(ctx, s.Namespace, s.Spec.Selector, &st)
	return st
}

func jobStatus(j *batchv1.Job) rollout {
	st := rollout{Kind: "Job", Name: j.Name}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.Ready = true
			return st
		case batchv1.JobFailed:
			st.Failed, st.Message = true, fmt.Sprintf("job failed: %s: %s", c.Reason, c.Message)
			return st
		}
	}
	st.Message = fmt.Sprintf("%d active, %d succeeded, %d failed", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
	return st
}

// podRestarts sums the restarts of a workload's pods and, when the
// workload is not ready, adds to st's message what its first unready pod
// is stuck on (unschedulable, image pull, crash loop).
func (r *Runtime) podRestarts(ctx context.Context, ns string, sel *metav1.LabelSelector, st *rollout) int {
	if sel == nil {
		return 0
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s == labels.Nothing() {
		return 0
	}
	pods, err := r.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: s.String()})
	if err != nil {
		return 0
	}
	n := 0
	why := ""
	for _, pod := range pods.Items {
		for _, cs := range pod.Status.ContainerStatuses {
			n += int(cs.RestartCount)
			if why == "" && cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
				why = fmt.Sprintf("pod %s container %s: %s %s", pod.Name, cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			}
		}
		if why == "" {
			for _, c := range pod.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					why = fmt.Sprintf("pod %s not scheduled: %s", pod.Name, c.Message)
				}
			}
		}
	}
	if !st.Ready && why != "" {
		st.Message += " (" + strings.TrimSpace(why) + ")"
	}
	return n
}
