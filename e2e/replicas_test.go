package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/kubetest"
	"sandpit.dev/sandpit/internal/pgtest"
)

// haTemplate runs on the kube runtime with nothing real: render makes a
// Deployment and a Service of the image, and kwok reports the pod Ready.
const haTemplate = `apiVersion: sandpit/v1
name: ha
services:
  web:
    image: example.com/web:1
    ports: [{name: http, port: 8080}]
`

const leadingLog = "leading: this replica reconciles"

// TestTwoReplicasOnePostgresStore runs two `sandpit serve` replicas over one
// PostgreSQL store and one cluster, electing their leader with a Lease:
// either replica's API takes sandboxes, the leader alone reconciles them
// (the follower counts no reconcile at all), each sandbox gets exactly one
// namespace, and when the leader is killed with SIGKILL the other takes
// the Lease and reconciles creates and deletes; the killed one, restarted,
// follows.
func TestTwoReplicasOnePostgresStore(t *testing.T) {
	kc := kubetest.Get(t)
	db := pgtest.Get(t).NewDatabase(t)
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	suffix := randomHex(t, 4)
	inst, leaseNS := "e2e-ha-"+suffix, "e2e-ha-"+suffix
	leaseName := inst + "-leader"
	if _, err := kc.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the lease namespace: %v", err)
	}
	// Registered before the servers, so it runs after their cleanup
	// (which deletes every sandbox through the API).
	t.Cleanup(func() {
		_ = kc.Client.CoreV1().Namespaces().Delete(context.Background(), leaseNS, metav1.DeleteOptions{})
	})
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("spt_"+randomHex(t, 24)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--runtime", "kubernetes", "--kubeconfig", kc.Kubeconfig, "--kube-instance", inst,
		"--store", db, "--leader-elect", "--leader-elect-namespace", leaseNS, "--token-file", tokenFile}
	a := newServer(t, args...)
	b := newServer(t, args...)
	if a.token != b.token || len(a.token) < 32 {
		t.Fatalf("the replicas use tokens %q and %q, want the token file's", a.token, b.token)
	}
	byName := map[string]*server{"A": a, "B": b}
	nameOf := func(s *server) string {
		if s == a {
			return "A"
		}
		return "B"
	}
	// fatalf ends the test with the tail of both replicas' logs.
	fatalf := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n%s", append(args, bothLogs(a, b))...)
	}

	// The leader is the replica whose log says so, and it is the Lease's
	// holder; the other one says another replica leads.
	leader, holder := waitLeader(t, ctx, kc, leaseNS, leaseName, byName, nil, 30*time.Second, fatalf)
	follower := b
	if leader == b {
		follower = a
	}
	t.Logf("%s leads (lease holder %s) after %s", nameOf(leader), holder, time.Since(begin).Round(time.Millisecond))

	// Everything goes through the follower first: the template, and every
	// other create.
	follower.mustCLI("template", "apply", "-f", writeTemplate(t, "ha.yaml", haTemplate))
	replicas := []*server{follower, leader}
	var names []string
	for i := range 6 {
		name := fmt.Sprintf("ha%d", i+1)
		names = append(names, name)
		via := replicas[i%2]
		if i%3 == 0 {
			via.mustCLI("create", name, "--template", "ha")
		} else if _, err := via.client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: name, Template: "ha"}); err != nil {
			fatalf("create %s through %s: %v", name, nameOf(via), err)
		}
	}
	ids := map[string]string{} // name → id
	for i, name := range names {
		sb := replicas[(i+1)%2].waitPhase(name, client.PhaseReady, 90*time.Second)
		ids[name] = sb.ID
	}
	t.Logf("6 sandboxes Ready after %s", time.Since(begin).Round(time.Millisecond))
	for _, name := range names {
		fromA, errA := a.client.GetSandbox(ctx, name)
		fromB, errB := b.client.GetSandbox(ctx, name)
		if errA != nil || errB != nil {
			fatalf("get %s: A: %v, B: %v", name, errA, errB)
		}
		if fromA.ID != fromB.ID || fromA.Generation != fromB.Generation || fromA.Status.Phase != fromB.Status.Phase ||
			fromA.Status.ObservedGeneration != fromB.Status.ObservedGeneration {
			fatalf("the replicas disagree on %s: A has %s gen %d %s (observed %d), B has %s gen %d %s (observed %d)", name,
				fromA.ID, fromA.Generation, fromA.Status.Phase, fromA.Status.ObservedGeneration,
				fromB.ID, fromB.Generation, fromB.Status.Phase, fromB.Status.ObservedGeneration)
		}
	}
	if out := follower.mustCLI("get", names[0]); !strings.Contains(out, "Ready") {
		fatalf("sandpit get %s through the follower:\n%s", names[0], out)
	}

	// One reconciler only: the leader's.
	if n := reconciles(t, leader); n == 0 {
		fatalf("the leader (%s) counts no reconciles", nameOf(leader))
	}
	if n := reconciles(t, follower); n != 0 {
		fatalf("the follower (%s) counts %v reconciles, want none", nameOf(follower), n)
	}
	checkNamespaces(t, ctx, kc, inst, ids, fatalf)

	// Kill the leader: the follower takes the Lease once it expires.
	killedAt := time.Now()
	leader.kill()
	t.Logf("killed the leader %s", nameOf(leader))
	survivor, restarted := follower, leader
	got, newHolder := waitLeader(t, ctx, kc, leaseNS, leaseName, map[string]*server{nameOf(survivor): survivor}, &holder, 40*time.Second, fatalf)
	if got != survivor {
		fatalf("unexpected leader after the kill")
	}
	t.Logf("%s took the lease (%s) %s after the kill", nameOf(survivor), newHolder, time.Since(killedAt).Round(time.Millisecond))

	// The survivor reconciles: a create, and a delete.
	survivor.mustCLI("create", "ha7", "--template", "ha")
	ids["ha7"] = survivor.waitPhase("ha7", client.PhaseReady, 60*time.Second).ID
	gone := names[1]
	if _, err := survivor.client.DeleteSandbox(ctx, gone); err != nil {
		fatalf("delete %s: %v", gone, err)
	}
	survivor.waitPhase(gone, "", 60*time.Second)
	waitNamespaceGone(t, kc, "sandpit-"+ids[gone], 60*time.Second)
	if _, err := survivor.client.GetSandbox(ctx, gone); !client.IsNotFound(err) {
		fatalf("%s's record after its delete: %v, want not found", gone, err)
	}
	delete(ids, gone)
	if n := reconciles(t, survivor); n == 0 {
		fatalf("the new leader (%s) counts no reconciles", nameOf(survivor))
	}
	checkNamespaces(t, ctx, kc, inst, ids, fatalf)

	// The killed replica comes back as a follower: the survivor keeps the
	// Lease, and it reconciles nothing, not even the sandbox created
	// through it.
	const followingLog = "another replica leads"
	before := logCount(restarted, followingLog)
	restarted.start()
	waitLog(t, restarted, followingLog, before+1, 20*time.Second, fatalf)
	if _, err := restarted.client.CreateSandbox(ctx, client.CreateSandboxRequest{Name: "ha8", Template: "ha"}); err != nil {
		fatalf("create ha8 through the restarted %s: %v", nameOf(restarted), err)
	}
	ids["ha8"] = restarted.waitPhase("ha8", client.PhaseReady, 60*time.Second).ID
	for until := time.Now().Add(3 * time.Second); time.Now().Before(until); time.Sleep(500 * time.Millisecond) {
		if n := reconciles(t, restarted); n != 0 {
			fatalf("the restarted %s counts %v reconciles, want none: it should follow", nameOf(restarted), n)
		}
	}
	if h := leaseHolder(t, ctx, kc, leaseNS, leaseName); h != newHolder {
		fatalf("the lease moved from %s to %s after the restart", newHolder, h)
	}
	if logCount(restarted, leadingLog) > 1 { // once, before the kill
		fatalf("the restarted %s says it leads", nameOf(restarted))
	}
	checkNamespaces(t, ctx, kc, inst, ids, fatalf)
	t.Logf("done in %s", time.Since(begin).Round(time.Millisecond))
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// waitLeader waits until the Lease has a holder other than *not (nil: any
// holder) and one of the candidates' logs says it leads with that
// identity; it returns that replica and the holder.
func waitLeader(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, name string, candidates map[string]*server,
	not *string, within time.Duration, fatalf func(string, ...any)) (*server, string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		holder := leaseHolder(t, ctx, kc, ns, name)
		if holder != "" && (not == nil || holder != *not) {
			var found []*server
			for _, s := range candidates {
				if logLeads(s, holder) {
					found = append(found, s)
				}
			}
			if len(found) == 1 {
				return found[0], holder
			}
			if len(found) > 1 {
				fatalf("two replicas say they lead as %s", holder)
			}
		}
		if time.Now().After(deadline) {
			fatalf("no new leader within %s: lease %s/%s holder %q", within, ns, name, holder)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func leaseHolder(t *testing.T, ctx context.Context, kc *kubetest.Cluster, ns, name string) string {
	t.Helper()
	l, err := kc.Client.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("get lease %s/%s: %v", ns, name, err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// logLeads reports whether s logged that it leads as identity.
func logLeads(s *server, identity string) bool {
	b, _ := os.ReadFile(s.logPath)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, leadingLog) && strings.Contains(line, "identity="+identity) {
			return true
		}
	}
	return false
}

// logCount is how many times s's log (over all its starts) holds text.
func logCount(s *server, text string) int {
	b, _ := os.ReadFile(s.logPath)
	return strings.Count(string(b), text)
}

// waitLog waits until s's log holds text n times.
func waitLog(t *testing.T, s *server, text string, n int, within time.Duration, fatalf func(string, ...any)) {
	t.Helper()
	for deadline := time.Now().Add(within); logCount(s, text) < n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			fatalf("%q not in the log %d times within %s", text, n, within)
		}
	}
}

// reconciles is the sum of sandpit_reconciles_total over its results on
// s's /metrics (absent: none yet).
func reconciles(t *testing.T, s *server) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.api+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "sandpit_reconciles_total") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return sum
}

// checkNamespaces checks that the instance has exactly one namespace per
// sandbox in ids (name → id), named after its id, and no other (namespaces
// being deleted excepted).
func checkNamespaces(t *testing.T, ctx context.Context, kc *kubetest.Cluster, inst string, ids map[string]string, fatalf func(string, ...any)) {
	t.Helper()
	list, err := kc.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "sandpit.dev/instance=" + inst})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, ns := range list.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		id := ns.Labels["sandpit.dev/sandbox-id"]
		if ns.Name != "sandpit-"+id {
			fatalf("namespace %s is labelled with sandbox %s", ns.Name, id)
		}
		count[id]++
	}
	want := map[string]bool{}
	for name, id := range ids {
		want[id] = true
		if count[id] != 1 {
			fatalf("sandbox %s (%s) has %d namespaces, want 1 (instance namespaces: %v)", name, id, count[id], count)
		}
	}
	for id := range count {
		if !want[id] {
			fatalf("namespace of unknown sandbox %s (want only %v)", id, ids)
		}
	}
}

// bothLogs is the tail of both replicas' logs, for failure messages.
func bothLogs(a, b *server) string {
	var sb strings.Builder
	for _, s := range []struct {
		name string
		s    *server
	}{{"A", a}, {"B", b}} {
		data, _ := os.ReadFile(s.s.logPath)
		fmt.Fprintf(&sb, "--- replica %s (%s) log tail:\n%s\n", s.name, s.s.api, tail(string(data), 40))
	}
	return sb.String()
}
