package builtins

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kplay-dev/kplay/engine"
)

// validatePod applies the rules the kubelet applies to a static pod before
// it runs it (k8s.io/kubernetes' ValidatePodCreate, which the API server
// applies too) to a manifest that already decodes as a v1 Pod. It returns
// one message per fault, in document order, each starting with the
// field's path as the API server words it. It covers names and labels,
// ports, unique container, volume and port names, volume mounts,
// hostNetwork and hostPort, the enumerated fields, and the rules of
// podrules.go (resources, env sources, probes, security contexts,
// sysctls, tolerations, DNS, hostname, nodeSelector); it leaves the rarer
// volume sources, affinity and lifecycle hooks to the kubelet.
// TestPodRulesAgreeWithAPIServer holds it to a real kube-apiserver.
//
// With hide (the manifest is sensitive) no message quotes a value or a
// map key of the manifest: a value reads hiddenValue and a key
// hiddenKey's "(key 2 of 3)".
func validatePod(doc *node, hide bool) []string {
	v := &podValidator{hide: hide}
	meta := doc.field("metadata")
	v.podName(meta.field("name"))
	v.name("metadata.namespace", meta.field("namespace"), validation.IsDNS1123Label, "a DNS-1123 label")
	v.labels("metadata.labels", meta.field("labels"))
	v.annotations(meta.field("annotations"))

	spec := doc.field("spec")
	var volumes []string
	for i, vol := range spec.field("volumes").list() {
		p := fmt.Sprintf("spec.volumes[%d]", i)
		name := vol.field("name").str()
		switch {
		case name == "":
			v.add(p+".name", "is missing (give the volume a name)")
		case slices.Contains(volumes, name):
			v.add(p+".name", fmt.Sprintf("%s is a duplicate (each volume needs its own name)", v.q(name)))
		default:
			v.check(p+".name", name, validation.IsDNS1123Label(name))
		}
		volumes = append(volumes, name)
		v.volumeSource(p, vol)
	}

	hostNetwork := isTrue(spec.field("hostNetwork"))
	containers := map[string]bool{}
	hostPorts := map[string]string{}
	for _, kind := range []string{"initContainers", "containers"} {
		for i, c := range spec.field(kind).list() {
			p := fmt.Sprintf("spec.%s[%d]", kind, i)
			ports := hostPorts
			if kind == "initContainers" {
				// The API server checks each init container's host
				// ports on their own: init containers run one at a
				// time, before the containers.
				ports = map[string]string{}
			}
			v.container(p, c, containers, volumes, hostNetwork, ports)
			v.containerRules(p, c, kind == "initContainers")
		}
	}
	if len(spec.field("ephemeralContainers").list()) > 0 {
		// ValidatePodCreate: they are added to a running pod through the
		// API, never created with it; the kubelet refuses a static pod
		// that has them.
		v.add("spec.ephemeralContainers", "cannot be set on create (a static pod cannot have ephemeral containers; make them containers or initContainers)")
	}
	v.oneOf("spec.restartPolicy", spec.field("restartPolicy"), "Always", "OnFailure", "Never")
	v.oneOf("spec.dnsPolicy", spec.field("dnsPolicy"), "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
	v.specRules(spec, hostNetwork)
	return v.errs
}

// podValidator collects the faults of one pod.
type podValidator struct {
	errs []string
	hide bool // the manifest is sensitive: quote none of its values and keys
}

func (v *podValidator) add(path, msg string) { v.errs = append(v.errs, path+": "+msg) }

// q quotes a value of the manifest for a message, or hides it.
func (v *podValidator) q(s string) string {
	if v.hide {
		return hiddenValue
	}
	return strconv.Quote(s)
}

// num formats a number of the manifest for a message, or hides it.
func (v *podValidator) num(i int64) string {
	if v.hide {
		return hiddenValue
	}
	return strconv.FormatInt(i, 10)
}

// key is the path element of the i-th of a map's n keys, k: ["k"], or
// [(key 2 of 3)] when hidden.
func (v *podValidator) key(k string, i, n int) string {
	if v.hide {
		return "[" + hiddenKey(i, n) + "]"
	}
	return "[" + strconv.Quote(k) + "]"
}

// check reports the messages of a k8s.io/apimachinery validation function
// for value at path. (Their messages quote no value.)
func (v *podValidator) check(path, value string, msgs []string) {
	if len(msgs) > 0 {
		v.add(path, fmt.Sprintf("%s is invalid: %s", v.q(value), strings.Join(msgs, "; ")))
	}
}

// name checks an optional name n against rule.
func (v *podValidator) name(path string, n *node, rule func(string) []string, what string) {
	if n == nil || n.kind != 's' {
		return
	}
	if msgs := rule(n.text); len(msgs) > 0 {
		v.add(path, fmt.Sprintf("%s is not %s: %s", v.q(n.text), what, strings.Join(msgs, "; ")))
	}
}

// maxStaticPodName is the longest metadata.name a static pod can have:
// the kubelet names the pod "<metadata.name>-<node name>" before it
// validates it, and that must be a DNS-1123 subdomain (253 characters at
// most), so one "-" and at least one character of node name must fit.
const maxStaticPodName = validation.DNS1123SubdomainMaxLength - 2

// podName checks metadata.name. The API server knows no node name, so
// its check is the 253 of a subdomain; TestPodRulesAgreeWithAPIServer
// cannot hold the 251 of maxStaticPodName to it (TestValidatePod has
// the case).
func (v *podValidator) podName(n *node) {
	if n == nil || n.kind != 's' {
		return
	}
	msgs := validation.IsDNS1123Subdomain(n.text)
	if len(n.text) > maxStaticPodName {
		tooLong := validation.MaxLenError(validation.DNS1123SubdomainMaxLength)
		msgs = slices.DeleteFunc(msgs, func(m string) bool { return m == tooLong })
		v.add("metadata.name", fmt.Sprintf("%d characters is too long for a static pod: the kubelet names it \"<metadata.name>-<node name>\", which may have %d, so metadata.name may have %d at most (shorten it)",
			len(n.text), validation.DNS1123SubdomainMaxLength, maxStaticPodName))
	}
	if len(msgs) > 0 {
		v.add("metadata.name", fmt.Sprintf("%s is not a DNS-1123 subdomain: %s", v.q(n.text), strings.Join(msgs, "; ")))
	}
}

// labels checks a map of labels (metadata.labels, spec.nodeSelector):
// each key a qualified name, each value a label value.
func (v *podValidator) labels(path string, n *node) {
	keys := n.objKeys()
	for i, k := range keys {
		p := path + v.key(k, i, len(keys))
		if msgs := content.IsLabelKey(k); len(msgs) > 0 {
			v.add(p, fmt.Sprintf("key %s is invalid: %s", v.q(k), strings.Join(msgs, "; ")))
		}
		val := n.elems[i].str()
		v.check(p, val, content.IsLabelValue(val))
	}
}

func (v *podValidator) annotations(n *node) {
	total := 0
	keys := n.objKeys()
	for i, k := range keys {
		p := "metadata.annotations" + v.key(k, i, len(keys))
		if msgs := content.IsLabelKey(strings.ToLower(k)); len(msgs) > 0 {
			v.add(p, fmt.Sprintf("key %s is invalid: %s", v.q(k), strings.Join(msgs, "; ")))
		}
		total += len(k) + len(n.elems[i].str())
	}
	const maxSize = 256 * 1024
	if total > maxSize {
		v.add("metadata.annotations", fmt.Sprintf("%d bytes is too long (at most %d)", total, maxSize))
	}
}

// volumeSource checks that vol has at most one source (none is an
// emptyDir, by the defaults both the kubelet and the API server apply),
// and a hostPath's path.
func (v *podValidator) volumeSource(p string, vol *node) {
	var sources []string
	for _, k := range vol.objKeys() {
		if k != "name" && vol.field(k).kind != 'z' {
			sources = append(sources, k)
		}
	}
	if len(sources) > 1 {
		v.add(p, fmt.Sprintf("has %d sources (%s); give only one", len(sources), strings.Join(sources, ", ")))
	}
	if hp := vol.field("hostPath"); hp != nil && hp.kind == 'o' {
		path := hp.field("path").str()
		if path == "" {
			v.add(p+".hostPath.path", "is missing (give the directory or file on the host)")
		} else if hasDotDot(path) {
			v.add(p+".hostPath.path", fmt.Sprintf("%s must not contain \"..\"", v.q(path)))
		}
		v.oneOf(p+".hostPath.type", hp.field("type"), "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice")
	}
}

// container checks one container; names collects the containers' names,
// hostPorts the host ports taken so far.
func (v *podValidator) container(p string, c *node, names map[string]bool, volumes []string, hostNetwork bool, hostPorts map[string]string) {
	name := c.field("name").str()
	switch {
	case name == "":
		v.add(p+".name", "is missing (give the container a name)")
	case names[name]:
		v.add(p+".name", fmt.Sprintf("%s is a duplicate (each container needs its own name)", v.q(name)))
	default:
		v.check(p+".name", name, validation.IsDNS1123Label(name))
	}
	names[name] = true
	image := c.field("image").str()
	if image == "" {
		v.add(p+".image", "is missing (give the container an image)")
	} else if strings.TrimSpace(image) != image {
		v.add(p+".image", fmt.Sprintf("%s has leading or trailing space", v.q(image)))
	}
	v.oneOf(p+".imagePullPolicy", c.field("imagePullPolicy"), "Always", "IfNotPresent", "Never")
	v.oneOf(p+".terminationMessagePolicy", c.field("terminationMessagePolicy"), "File", "FallbackToLogsOnError")

	portNames := map[string]bool{}
	for i, port := range c.field("ports").list() {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		if pn := port.field("name").str(); pn != "" {
			if portNames[pn] {
				v.add(pp+".name", fmt.Sprintf("%s is a duplicate (each port needs its own name)", v.q(pn)))
			}
			portNames[pn] = true
			v.check(pp+".name", pn, validation.IsValidPortName(pn))
		}
		cp, hasCP := port.field("containerPort").integer()
		if !hasCP {
			v.add(pp+".containerPort", "is missing (give the port the container listens on)")
		} else if len(validation.IsValidPortNum(int(cp))) > 0 {
			v.add(pp+".containerPort", fmt.Sprintf("%s is out of range (1-65535)", v.num(cp)))
		}
		hp, hasHP := port.field("hostPort").integer()
		if hasHP && hp != 0 && len(validation.IsValidPortNum(int(hp))) > 0 {
			v.add(pp+".hostPort", fmt.Sprintf("%s is out of range (1-65535, or 0 for none)", v.num(hp)))
		}
		if hostNetwork && hasHP && hp != 0 && hasCP && hp != cp {
			if v.hide {
				v.add(pp+".hostPort", fmt.Sprintf("%s must equal containerPort when hostNetwork is true (leave it out, or write containerPort's number)", hiddenValue))
			} else {
				v.add(pp+".hostPort", fmt.Sprintf("%d must equal containerPort %d when hostNetwork is true (leave it out, or write %d)", hp, cp, cp))
			}
		}
		proto := port.field("protocol")
		v.oneOf(pp+".protocol", proto, "TCP", "UDP", "SCTP")
		if hostNetwork && hp == 0 {
			hp = cp // the kubelet's defaults take the container's port on the host
		}
		if hp != 0 {
			pr := proto.str()
			if pr == "" {
				pr = "TCP"
			}
			key := fmt.Sprintf("%s/%d/%s", port.field("hostIP").str(), hp, pr)
			if prev, ok := hostPorts[key]; ok {
				taken := fmt.Sprintf("%d/%s", hp, pr)
				if v.hide {
					taken = hiddenValue
				}
				v.add(pp+".hostPort", fmt.Sprintf("%s is taken already by %s", taken, prev))
			} else {
				hostPorts[key] = pp
			}
		}
	}

	mountPaths := map[string]bool{}
	for i, m := range c.field("volumeMounts").list() {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", p, i)
		vn := m.field("name").str()
		switch {
		case vn == "":
			v.add(mp+".name", "is missing (give the name of a volume in spec.volumes)")
		case !slices.Contains(volumes, vn):
			if v.hide {
				v.add(mp+".name", hiddenValue+" names no volume in spec.volumes")
			} else {
				v.add(mp+".name", fmt.Sprintf("%q names no volume in spec.volumes%s", vn, closestName(vn, volumes)))
			}
		}
		path := m.field("mountPath").str()
		switch {
		case path == "":
			v.add(mp+".mountPath", "is missing (give the path in the container)")
		case mountPaths[path]:
			v.add(mp+".mountPath", fmt.Sprintf("%s is mounted twice in this container", v.q(path)))
		}
		mountPaths[path] = true
		if sp := m.field("subPath").str(); sp != "" && (strings.HasPrefix(sp, "/") || hasDotDot(sp)) {
			v.add(mp+".subPath", fmt.Sprintf("%s must be a relative path without \"..\"", v.q(sp)))
		}
	}
	for i, e := range c.field("env").list() {
		if e.field("name").str() == "" {
			v.add(fmt.Sprintf("%s.env[%d].name", p, i), "is missing")
		}
	}
}

// oneOf checks that the optional string n is one of values.
func (v *podValidator) oneOf(path string, n *node, values ...string) {
	if n == nil || n.kind != 's' {
		return
	}
	for _, s := range values {
		if n.text == s {
			return
		}
	}
	var quoted []string
	for _, s := range values {
		if s != "" {
			quoted = append(quoted, strconv.Quote(s))
		}
	}
	v.add(path, fmt.Sprintf("%s is not supported (write one of %s)", v.q(n.text), strings.Join(quoted, ", ")))
}

// present reports whether the optional field n is given and not null.
func present(n *node) bool { return n != nil && n.kind != 'z' }

// isTrue reports whether n is the bool true.
func isTrue(n *node) bool { return n != nil && n.kind == 'b' && n.text == "true" }

// isFalse reports whether n is the bool false (not merely absent).
func isFalse(n *node) bool { return n != nil && n.kind == 'b' && n.text == "false" }

// list returns an array's elements, or nil.
func (n *node) list() []*node {
	if n == nil || n.kind != 'a' {
		return nil
	}
	return n.elems
}

// objKeys returns an object's keys, or nil.
func (n *node) objKeys() []string {
	if n == nil || n.kind != 'o' {
		return nil
	}
	return n.keys
}

// integer returns a number's value; ok is false if n is not an integer.
func (n *node) integer() (int64, bool) {
	if n == nil || n.kind != 'n' {
		return 0, false
	}
	i, err := strconv.ParseInt(n.text, 10, 64)
	return i, err == nil
}

// closestName returns " (did you mean %q?)" for the name in names
// closest to s (engine.Suggest, the "did you mean" of every message),
// else "".
func closestName(s string, names []string) string {
	best := engine.Suggest(s, names)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}
