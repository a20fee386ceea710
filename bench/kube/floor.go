package main

import (
	"context"
	"fmt"
	"log"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/internal/runtime/kube"
)

// floorPhase measures what the API server can take from a minimal Go
// client: the same objects, rendered beforehand, applied with one
// server-side apply request each (the Namespace, then the six objects at
// once), and nothing else: no render, no apply set, no reads. The gap
// between it and sandpit is the runtime's own cost. Its namespaces are
// then deleted, untimed, and counted as orphans.
func (e *env) floorPhase(ctx context.Context, rt *kube.Runtime, instance, prefix string) *row {
	insts := instances(e.n, e.tpl, e.src)
	objs := make([][]*unstructured.Unstructured, e.n)
	for i, inst := range insts {
		o, err := rt.RenderInstance(ctx, inst)
		harness.Check(err)
		ns := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": rt.Namespace(inst.ID), "labels": map[string]any{
				kube.LabelManagedBy: kube.ManagedBy, kube.LabelInstance: instance, kube.LabelSandboxID: inst.ID, kube.LabelSandbox: inst.Name,
			}},
		}}
		objs[i] = append([]*unstructured.Unstructured{ns}, o...)
	}
	dyn, err := dynamic.NewForConfig(e.rest)
	harness.Check(err)
	dc, err := discovery.NewDiscoveryClientForConfig(e.rest)
	harness.Check(err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	force := true
	apply := func(ctx context.Context, u *unstructured.Unstructured) error {
		m, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		if err != nil {
			return err
		}
		body, err := u.MarshalJSON()
		if err != nil {
			return err
		}
		var rc dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if u.GetNamespace() != "" {
			rc = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		_, err = rc.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "bench", Force: &force})
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		return nil
	}
	// Fill the mapper's cache, untimed.
	for _, u := range objs[0] {
		_, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		harness.Check(err)
	}

	log.Printf("floor: server-side apply of %d sandboxes' objects from Go, %d at a time", e.n, e.c)
	a, am := sampleCPU(e.procs), scrapeAPI(ctx, e.cs)
	create := pool("floor: one server-side apply per object from Go, no render, no apply set", e.n, e.c, func(i int) error {
		if err := apply(ctx, objs[i][0]); err != nil {
			return err
		}
		var wg sync.WaitGroup
		errs := make([]error, len(objs[i])-1)
		for j, u := range objs[i][1:] {
			wg.Add(1)
			go func() { defer wg.Done(); errs[j] = apply(ctx, u) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	})
	create.cpu, create.api = cpuBetween(a, sampleCPU(e.procs)), apiBetween(am, scrapeAPI(ctx, e.cs), e.n)
	logRow(create)
	create.complete, err = complete(ctx, e.cs, instance)
	harness.Check(err)
	log.Printf("  %d of %d namespaces hold every object", create.complete, e.n)

	e.settle()
	log.Printf("floor: deleting its namespaces (untimed)")
	pool("floor: delete", e.n, e.dc, func(i int) error {
		return rt.Down(ctx, insts[i].ID, &quiet{id: insts[i].ID})
	})
	e.countOrphans(ctx, create, instance, prefix)
	e.settle()
	return create
}
