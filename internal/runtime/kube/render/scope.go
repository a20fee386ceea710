package render

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// clusterScoped lists the well-known cluster-scoped kinds, as
// "Kind.group" ("Kind" for the core group). Rendering has no API server
// to ask, so kinds not listed here (custom resources among them) are
// taken as namespaced.
var clusterScoped = map[string]bool{}

func init() {
	for _, k := range []string{
		"Namespace", "Node", "PersistentVolume", "ComponentStatus",
		"ClusterRole.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io",
		"CustomResourceDefinition.apiextensions.k8s.io",
		"StorageClass.storage.k8s.io", "CSIDriver.storage.k8s.io", "CSINode.storage.k8s.io",
		"VolumeAttachment.storage.k8s.io", "VolumeAttributesClass.storage.k8s.io",
		"PriorityClass.scheduling.k8s.io",
		"IngressClass.networking.k8s.io", "IPAddress.networking.k8s.io", "ServiceCIDR.networking.k8s.io",
		"ValidatingWebhookConfiguration.admissionregistration.k8s.io",
		"MutatingWebhookConfiguration.admissionregistration.k8s.io",
		"ValidatingAdmissionPolicy.admissionregistration.k8s.io",
		"ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io",
		"APIService.apiregistration.k8s.io",
		"CertificateSigningRequest.certificates.k8s.io",
		"ClusterTrustBundle.certificates.k8s.io",
		"RuntimeClass.node.k8s.io",
		"PodSecurityPolicy.policy",
		"FlowSchema.flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration.flowcontrol.apiserver.k8s.io",
		"TokenReview.authentication.k8s.io", "SelfSubjectReview.authentication.k8s.io",
		"SubjectAccessReview.authorization.k8s.io", "SelfSubjectAccessReview.authorization.k8s.io",
		"SelfSubjectRulesReview.authorization.k8s.io",
		"ClusterIssuer.cert-manager.io",
	} {
		clusterScoped[k] = true
	}
}

// IsClusterScoped says whether objects of gk are cluster-scoped, by the
// table Render uses: well-known kinds only; others count as namespaced.
func IsClusterScoped(gk schema.GroupKind) bool { return clusterScoped[kindName(gk.Group, gk.Kind)] }

func (o *object) clusterScoped() bool { return clusterScoped[kindName(o.group(), o.kind())] }

// clusterScope drops Namespace objects (the sandbox's namespace replaces
// them) and refuses cluster-scoped objects of kinds the server does not
// allow: they would be shared by all sandboxes and outlive this one.
func (r *renderer) clusterScope() error {
	var errs []error
	kept := r.objs[:0]
	for _, o := range r.objs {
		if o.group() == "" && o.kind() == "Namespace" {
			continue
		}
		if o.clusterScoped() {
			kind := kindName(o.group(), o.kind())
			if !slices.Contains(r.opts.AllowClusterKinds, kind) {
				errs = append(errs, fmt.Errorf("%s: %s %q is cluster-scoped, and a sandbox owns only its namespace: remove it, or start the server with --kube-allow-cluster-kind=%s to let sandboxes create it (its name is then prefixed with the sandbox's namespace)",
					o.source, kind, o.u.GetName(), kind))
				continue
			}
		}
		kept = append(kept, o)
	}
	r.objs = kept
	return errors.Join(errs...)
}
