package builtins

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kplay-dev/kplay/engine"
)

// validatePod applies the rules the kubelet applies to a static pod before
// it runs it (k8s.io/kubernetes' ValidatePodCreate, which the API server
// applies too) to a manifest that already decodes as a v1 Pod. It returns
// one message per fault, in document order, each starting with the
// field's path. It covers names and labels, ports, unique container,
// volume and port names, volume mounts, hostNetwork and hostPort, and
// the enumerated fields; it leaves resources, probes' timings, security
// contexts and the rarer volume sources to the kubelet.
// TestPodRulesAgreeWithAPIServer holds it to a real kube-apiserver.
func validatePod(doc *node) []string {
	v := &podValidator{}
	meta := doc.field("metadata")
	v.name("metadata.name", meta.field("name"), validation.IsDNS1123Subdomain, "a DNS-1123 subdomain")
	v.name("metadata.namespace", meta.field("namespace"), validation.IsDNS1123Label, "a DNS-1123 label")
	v.labels(meta.field("labels"))
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
			v.add(p+".name", fmt.Sprintf("%q is a duplicate (each volume needs its own name)", name))
		default:
			v.check(p+".name", name, validation.IsDNS1123Label(name))
		}
		volumes = append(volumes, name)
		v.volumeSource(p, vol)
	}

	hostNetwork := spec.field("hostNetwork") != nil && spec.field("hostNetwork").text == "true"
	containers := map[string]bool{}
	hostPorts := map[string]string{}
	for _, kind := range []string{"initContainers", "containers"} {
		for i, c := range spec.field(kind).list() {
			p := fmt.Sprintf("spec.%s[%d]", kind, i)
			v.container(p, c, containers, volumes, hostNetwork, hostPorts)
		}
	}
	v.oneOf("spec.restartPolicy", spec.field("restartPolicy"), "Always", "OnFailure", "Never")
	v.oneOf("spec.dnsPolicy", spec.field("dnsPolicy"), "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
	return v.errs
}

type podValidator struct{ errs []string }

func (v *podValidator) add(path, msg string) { v.errs = append(v.errs, path+": "+msg) }

// check reports the messages of a k8s.io/apimachinery validation function
// for value at path.
func (v *podValidator) check(path, value string, msgs []string) {
	if len(msgs) > 0 {
		v.add(path, fmt.Sprintf("%q is invalid: %s", value, strings.Join(msgs, "; ")))
	}
}

// name checks an optional name n against rule.
func (v *podValidator) name(path string, n *node, rule func(string) []string, what string) {
	if n == nil || n.kind != 's' {
		return
	}
	if msgs := rule(n.text); len(msgs) > 0 {
		v.add(path, fmt.Sprintf("%q is not %s: %s", n.text, what, strings.Join(msgs, "; ")))
	}
}

func (v *podValidator) labels(n *node) {
	for i, k := range n.objKeys() {
		p := "metadata.labels[" + strconv.Quote(k) + "]"
		v.check(p, k, validation.IsQualifiedName(k))
		if val := n.elems[i].str(); len(validation.IsValidLabelValue(val)) > 0 {
			v.check(p, val, validation.IsValidLabelValue(val))
		}
	}
}

func (v *podValidator) annotations(n *node) {
	total := 0
	for i, k := range n.objKeys() {
		v.check("metadata.annotations["+strconv.Quote(k)+"]", k, validation.IsQualifiedName(strings.ToLower(k)))
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
			v.add(p+".hostPath.path", fmt.Sprintf("%q must not contain \"..\"", path))
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
		v.add(p+".name", fmt.Sprintf("%q is a duplicate (each container needs its own name)", name))
	default:
		v.check(p+".name", name, validation.IsDNS1123Label(name))
	}
	names[name] = true
	image := c.field("image").str()
	if image == "" {
		v.add(p+".image", "is missing (give the container an image)")
	} else if strings.TrimSpace(image) != image {
		v.add(p+".image", fmt.Sprintf("%q has leading or trailing space", image))
	}
	v.oneOf(p+".imagePullPolicy", c.field("imagePullPolicy"), "Always", "IfNotPresent", "Never")
	v.oneOf(p+".terminationMessagePolicy", c.field("terminationMessagePolicy"), "File", "FallbackToLogsOnError")

	portNames := map[string]bool{}
	for i, port := range c.field("ports").list() {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		if pn := port.field("name").str(); pn != "" {
			if portNames[pn] {
				v.add(pp+".name", fmt.Sprintf("%q is a duplicate (each port needs its own name)", pn))
			}
			portNames[pn] = true
			v.check(pp+".name", pn, validation.IsValidPortName(pn))
		}
		cp, hasCP := port.field("containerPort").integer()
		if !hasCP {
			v.add(pp+".containerPort", "is missing (give the port the container listens on)")
		} else if len(validation.IsValidPortNum(int(cp))) > 0 {
			v.add(pp+".containerPort", fmt.Sprintf("%d is out of range (1-65535)", cp))
		}
		hp, hasHP := port.field("hostPort").integer()
		if hasHP && hp != 0 && len(validation.IsValidPortNum(int(hp))) > 0 {
			v.add(pp+".hostPort", fmt.Sprintf("%d is out of range (1-65535, or 0 for none)", hp))
		}
		if hostNetwork && hasHP && hp != 0 && hasCP && hp != cp {
			v.add(pp+".hostPort", fmt.Sprintf("%d must equal containerPort %d when hostNetwork is true (leave it out, or write %d)", hp, cp, cp))
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
				v.add(pp+".hostPort", fmt.Sprintf("%d/%s is taken already by %s", hp, pr, prev))
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
			v.add(mp+".name", fmt.Sprintf("%q names no volume in spec.volumes%s", vn, closestName(vn, volumes)))
		}
		path := m.field("mountPath").str()
		switch {
		case path == "":
			v.add(mp+".mountPath", "is missing (give the path in the container)")
		case mountPaths[path]:
			v.add(mp+".mountPath", fmt.Sprintf("%q is mounted twice in this container", path))
		}
		mountPaths[path] = true
		if sp := m.field("subPath").str(); sp != "" && (strings.HasPrefix(sp, "/") || hasDotDot(sp)) {
			v.add(mp+".subPath", fmt.Sprintf("%q must be a relative path without \"..\"", sp))
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
	v.add(path, fmt.Sprintf("%q is not supported (write one of %s)", n.text, strings.Join(quoted, ", ")))
}

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
