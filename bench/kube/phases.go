package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/kube"
	"sandpit.dev/sandpit/internal/runtime/kube/render"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// row is one line of the result: N sandboxes through one operation.
type row struct {
	name   string
	n      int
	took   []time.Duration // per sandbox that succeeded
	failed int
	errs   []string // the first few errors
	wall   time.Duration
	cpu    cpuUse
	// complete is how many sandboxes held every object afterwards (create
	// rows), -1 when not checked.
	complete int
	// orphans is what was left of the sandboxes afterwards (delete rows),
	// -1 when not checked.
	orphans        int
	orphanExamples []string
	// api is the API server's requests per sandbox during the operation
	// (everyone's: this client's and the controllers' reactions).
	api []apiUse
}

func (r *row) rate() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(len(r.took)) / r.wall.Seconds()
}

// pool runs fn for 0..n-1 on c workers and times each call, from the call
// to its return. wall runs from the first call to the last return.
func pool(name string, n, c int, fn func(i int) error) *row {
	r := &row{name: name, n: n, complete: -1, orphans: -1}
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	done := 0
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				err := fn(i)
				d := time.Since(t0)
				mu.Lock()
				done++
				if err != nil {
					r.failed++
					if len(r.errs) < 3 {
						r.errs = append(r.errs, err.Error())
					}
				} else {
					r.took = append(r.took, d)
				}
				if *verbose || done%max(1, n/10) == 0 {
					log.Printf("  %s: %d/%d (%d failed)", name, done, n, r.failed)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && !harness.Interrupted(); i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	r.wall = time.Since(start)
	return r
}

// quiet is a runtime.Progress that drops everything but warnings (and,
// with -v, every event).
type quiet struct{ id string }

func (*quiet) StageStarted(string)         {}
func (*quiet) StageFinished(string, error) {}
func (*quiet) StageSkipped(string, string) {}
func (*quiet) External(string) func()      { return func() {} }
func (q *quiet) Event(typ sandbox.EventType, reason, msg string) {
	// NamespaceStuck is expected here: a namespace with pods takes the
	// namespace controller two passes 5 s apart.
	if *verbose || (typ == sandbox.EventWarning && reason != "NamespaceStuck") {
		log.Printf("    %s: %s %s: %s", q.id, typ, reason, msg)
	}
}

var _ runtime.Progress = (*quiet)(nil)

// instances makes n sandboxes of the template (new ids, names pr-1…).
func instances(n int, tpl *template.Template, dir string) []*runtime.Instance {
	out := make([]*runtime.Instance, n)
	for i := range out {
		out[i] = &runtime.Instance{ID: sandbox.NewID(), Name: fmt.Sprintf("pr-%d", i+1), Template: tpl, TemplateVersion: 1, BaseDir: dir}
	}
	return out
}

// env is what the phases share.
type env struct {
	rest       *rest.Config         // the test cluster, as admin
	cs         kubernetes.Interface // a clientset of rest
	kubeconfig string               // the same for kubectl
	kubectl    string               // kubectl's path
	procs      map[string]int       // the control plane's processes
	tpl        *template.Template
	src        string // the template's directory
	work       string
	n, c, dc   int // sandboxes, at a time when creating, at a time when deleting
}

// sandpitPhase creates e.n sandboxes with the runtime (Apply, or Up when
// rollout), then deletes them all with Down, and counts what is left.
func (e *env) sandpitPhase(ctx context.Context, rt *kube.Runtime, instance, prefix string, rollout bool) (create, del *row) {
	insts := instances(e.n, e.tpl, e.src)
	name, op := "sandpit create → applied (`Apply`)", "Apply"
	if rollout {
		name, op = "sandpit create → rolled out (`Up`)", "Up"
	}
	log.Printf("sandpit: %s %d sandboxes, %d at a time", op, e.n, e.c)
	a, am := sampleCPU(e.procs), scrapeAPI(ctx, e.cs)
	create = pool(name, e.n, e.c, func(i int) error {
		if rollout {
			_, err := rt.Up(ctx, insts[i], &quiet{id: insts[i].ID})
			return err
		}
		return rt.Apply(ctx, insts[i], &quiet{id: insts[i].ID})
	})
	b := sampleCPU(e.procs)
	create.cpu, create.api = cpuBetween(a, b), apiBetween(am, scrapeAPI(ctx, e.cs), e.n)
	logRow(create)
	var err error
	create.complete, err = complete(ctx, e.cs, instance)
	harness.Check(err)
	log.Printf("  %d of %d namespaces hold every object", create.complete, e.n)

	e.settle()
	log.Printf("sandpit: Down %d sandboxes, %d at a time", e.n, e.dc)
	a, am = sampleCPU(e.procs), scrapeAPI(ctx, e.cs)
	del = pool("sandpit delete → namespace gone (`Down`)", e.n, e.dc, func(i int) error {
		return rt.Down(ctx, insts[i].ID, &quiet{id: insts[i].ID})
	})
	b = sampleCPU(e.procs)
	del.cpu, del.api = cpuBetween(a, b), apiBetween(am, scrapeAPI(ctx, e.cs), e.n)
	if rollout {
		del.name = "sandpit delete after `Up` → namespace gone"
	}
	logRow(del)
	e.countOrphans(ctx, del, instance, prefix)
	if ids, err := rt.Sandboxes(ctx); err != nil || len(ids) > 0 {
		log.Printf("  WARNING: rt.Sandboxes after Down: %d ids, err %v", len(ids), err)
	}
	e.settle()
	return create, del
}

// kubectlPhase is the baseline: the same objects, rendered beforehand
// into one file per sandbox with its Namespace first, applied with one
// `kubectl apply -f` per sandbox, then deleted with one
// `kubectl delete namespace --wait` per sandbox.
func (e *env) kubectlPhase(ctx context.Context, rt *kube.Runtime, instance, prefix, mode string) (create, del *row) {
	insts := instances(e.n, e.tpl, e.src)
	dir := filepath.Join(e.work, "kubectl")
	harness.Check(os.MkdirAll(dir, 0o755))
	files := make([]string, e.n)
	for i, inst := range insts {
		f, err := e.writeManifest(ctx, rt, inst, instance, dir)
		harness.Check(err)
		files[i] = f
	}
	args := []string{"apply", "--server-side", "--field-manager=bench", "-f"}
	name := "kubectl apply --server-side -f (baseline)"
	if mode == "client-side" {
		args = []string{"apply", "-f"}
		name = "kubectl apply -f (baseline)"
	}
	log.Printf("kubectl: %s %d sandboxes, %d at a time", strings.Join(args, " "), e.n, e.c)
	a, am := sampleCPU(e.procs), scrapeAPI(ctx, e.cs)
	create = pool(name, e.n, e.c, func(i int) error {
		return e.runKubectl(ctx, append(args, files[i])...)
	})
	b := sampleCPU(e.procs)
	create.cpu, create.api = cpuBetween(a, b), apiBetween(am, scrapeAPI(ctx, e.cs), e.n)
	logRow(create)
	var err error
	create.complete, err = complete(ctx, e.cs, instance)
	harness.Check(err)
	log.Printf("  %d of %d namespaces hold every object", create.complete, e.n)

	e.settle()
	log.Printf("kubectl: delete namespace --wait %d sandboxes, %d at a time", e.n, e.dc)
	a, am = sampleCPU(e.procs), scrapeAPI(ctx, e.cs)
	del = pool("kubectl delete namespace --wait (baseline)", e.n, e.dc, func(i int) error {
		return e.runKubectl(ctx, "delete", "namespace", rt.Namespace(insts[i].ID), "--wait=true")
	})
	b = sampleCPU(e.procs)
	del.cpu, del.api = cpuBetween(a, b), apiBetween(am, scrapeAPI(ctx, e.cs), e.n)
	logRow(del)
	e.countOrphans(ctx, del, instance, prefix)
	e.settle()
	return create, del
}

// writeManifest renders inst with the runtime (without applying it) and
// writes its Namespace and objects to one file, as a team scripting
// kubectl would.
func (e *env) writeManifest(ctx context.Context, rt *kube.Runtime, inst *runtime.Instance, instance, dir string) (string, error) {
	objs, err := rt.RenderInstance(ctx, inst)
	if err != nil {
		return "", fmt.Errorf("render %s: %w", inst.Name, err)
	}
	y, err := render.YAML(objs)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n    %s: %s\n    %s: %s\n    %s: %s\n    %s: %s\n---\n",
		rt.Namespace(inst.ID), kube.LabelManagedBy, kube.ManagedBy, kube.LabelInstance, instance, kube.LabelSandboxID, inst.ID, kube.LabelSandbox, inst.Name)
	b.Write(y)
	p := filepath.Join(dir, inst.ID+".yaml")
	return p, os.WriteFile(p, b.Bytes(), 0o644)
}

func (e *env) runKubectl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, e.kubectl, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+filepath.Join(e.work, "kubecache"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (e *env) countOrphans(ctx context.Context, r *row, instance, prefix string) {
	n, ex, err := orphans(ctx, e.rest, e.cs, instance, prefix)
	harness.Check(err)
	r.orphans, r.orphanExamples = n, ex
	if n > 0 {
		log.Printf("  ORPHANS: %d (%s)", n, strings.Join(ex, ", "))
	} else {
		log.Printf("  orphans: 0")
	}
}

// settle waits until the control plane is nearly idle (the API server,
// etcd and the controller manager together under 0.2 cores over a second)
// and the rest of the host too (under -quiet cores), for at most -settle,
// so that one phase's tail (pods still being scheduled, garbage
// collection) and other work on the host weigh less on the next.
func (e *env) settle() {
	deadline := time.Now().Add(*settleMax)
	for !harness.Interrupted() {
		a := sampleCPU(e.procs)
		time.Sleep(time.Second)
		u := cpuBetween(a, sampleCPU(e.procs))
		busy := u.cores["kube-apiserver"] + u.cores["kube-controller-manager"] + u.cores["etcd"]
		if busy < 0.2 && u.other < *quietCores {
			return
		}
		if time.Now().After(deadline) {
			log.Printf("  not settled after %s: control plane %.2f cores, rest of the host %.2f cores; going on", *settleMax, busy, u.other)
			return
		}
	}
}

func logRow(r *row) {
	log.Printf("  %s: %d ok, %d failed, %.1f/s, p50 %s, p99 %s, wall %s",
		r.name, len(r.took), r.failed, r.rate(), harness.FmtDur(harness.Pct(r.took, 50)), harness.FmtDur(harness.Pct(r.took, 99)), r.wall.Round(10*time.Millisecond))
	for _, e := range r.errs {
		log.Printf("    error: %.400s", e)
	}
}
