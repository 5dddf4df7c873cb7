package builtins

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The rules of k8s.io/kubernetes' ValidatePodSpec (v1.37) that
// validatePod applies beyond names, ports and volumes. The API server
// validates a pod after defaulting it, and so does the kubelet for a
// static pod, so where a default matters (a probe's successThreshold,
// requests taken from limits) the rule applies it first. Where the API
// server's rule depends on a feature gate, the gate's default in v1.37
// decides. Each message starts with the field path the API server names.

// specRules checks the pod-wide fields: activeDeadlineSeconds, hostname
// and subdomain, nodeSelector, the pod's securityContext and sysctls,
// tolerations and dnsConfig.
func (v *podValidator) specRules(spec *node, hostNetwork bool) {
	if d, ok := spec.field("activeDeadlineSeconds").integer(); ok && (d < 1 || d > math.MaxInt32) {
		v.add("spec.activeDeadlineSeconds", fmt.Sprintf("%s %s (leave it out for no deadline)", v.num(d), validation.InclusiveRangeError(1, math.MaxInt32)))
	}
	for _, f := range []string{"hostname", "subdomain"} {
		if n := spec.field(f); n.str() != "" {
			v.name("spec."+f, n, validation.IsDNS1123Label, "an RFC 1123 label")
		}
	}
	v.labels("spec.nodeSelector", spec.field("nodeSelector"))
	v.podSecurityContext(spec.field("securityContext"), hostNetwork, isTrue(spec.field("hostIPC")))
	v.tolerations(spec.field("tolerations"))
	v.dnsConfig(spec.field("dnsConfig"), spec.field("dnsPolicy").str())
}

// podSecurityContext checks the IDs and sysctls of spec.securityContext.
func (v *podValidator) podSecurityContext(sc *node, hostNetwork, hostIPC bool) {
	const p = "spec.securityContext"
	v.id(p+".runAsUser", sc.field("runAsUser"), validation.IsValidUserID)
	v.id(p+".runAsGroup", sc.field("runAsGroup"), validation.IsValidGroupID)
	v.id(p+".fsGroup", sc.field("fsGroup"), validation.IsValidGroupID)
	for i, g := range sc.field("supplementalGroups").list() {
		v.id(fmt.Sprintf("%s.supplementalGroups[%d]", p, i), g, validation.IsValidGroupID)
	}
	seen := map[string]bool{}
	for i, s := range sc.field("sysctls").list() {
		sp := fmt.Sprintf("%s.sysctls[%d].name", p, i)
		name := s.field("name").str()
		switch {
		case name == "":
			v.add(sp, "is missing (give the sysctl's name, such as \"kernel.shm_rmid_forced\")")
		case len(name) > maxSysctlName || !sysctlName.MatchString(name):
			v.add(sp, fmt.Sprintf("%s is an invalid sysctl name: it must have at most %d characters and match regex %s", v.q(name), maxSysctlName, sysctlName))
		case seen[name]:
			v.add(sp, fmt.Sprintf("%s is a duplicate (set each sysctl once)", v.q(name)))
		}
		switch ns := sysctlNamespace(name); {
		case hostNetwork && ns == "net":
			v.add(sp, fmt.Sprintf("%s may not be specified when hostNetwork is true (it would set the host's own network sysctl)", v.q(name)))
		case hostIPC && ns == "ipc":
			v.add(sp, fmt.Sprintf("%s may not be specified when hostIPC is true (it would set the host's own IPC sysctl)", v.q(name)))
		}
		seen[name] = true
	}
}

// maxSysctlName and sysctlName are k8s.io/kubernetes' SysctlMaxLength
// and SysctlContainSlashFmt: dot- or slash-separated segments.
const maxSysctlName = 253

var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// sysctlNamespace returns "net" or "ipc" for a sysctl the kernel keeps
// per network or IPC namespace, else "" (k8s.io/component-helpers'
// sysctl.GetNamespace): a pod that shares the host's namespace would set
// the host's.
func sysctlNamespace(name string) string {
	if i := strings.IndexAny(name, "./"); i >= 0 && name[i] == '/' {
		// net/ipv4/ip_forward is net.ipv4.ip_forward: swap the separators.
		name = strings.Map(func(r rune) rune {
			switch r {
			case '.':
				return '/'
			case '/':
				return '.'
			}
			return r
		}, name)
	}
	if i := strings.IndexByte(name, '*'); i >= 0 {
		name = name[:i]
	}
	switch {
	case strings.HasPrefix(name, "net."):
		return "net"
	case strings.HasPrefix(name, "fs.mqueue."), name == "kernel.sem",
		slices.Contains([]string{"kernel.shm", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}, name),
		slices.Contains([]string{"kernel.msg", "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni"}, name):
		return "ipc"
	}
	return ""
}

// id checks an optional user or group ID.
func (v *podValidator) id(path string, n *node, rule func(int64) []string) {
	if i, ok := n.integer(); ok {
		if msgs := rule(i); len(msgs) > 0 {
			v.add(path, v.num(i)+" "+strings.Join(msgs, "; "))
		}
	}
}

// tolerations checks spec.tolerations as ValidateTolerations does, with
// the comparison operators Lt and Gt (an alpha feature in v1.37) refused.
func (v *podValidator) tolerations(n *node) {
	for i, t := range n.list() {
		p := fmt.Sprintf("spec.tolerations[%d]", i)
		key, op, value := t.field("key").str(), t.field("operator").str(), t.field("value").str()
		if key != "" {
			if msgs := content.IsLabelKey(key); len(msgs) > 0 {
				v.add(p+".key", fmt.Sprintf("%s is invalid: %s", v.q(key), strings.Join(msgs, "; ")))
			}
		}
		if key == "" && op != "Exists" {
			v.add(p+".operator", "must be Exists when key is empty, which means \"match all values and all keys\" (give a key, or write operator: Exists)")
		}
		if present(t.field("tolerationSeconds")) && t.field("effect").str() != "NoExecute" {
			v.add(p+".effect", "must be NoExecute when tolerationSeconds is set")
		}
		switch op {
		case "", "Equal":
			if msgs := content.IsLabelValue(value); len(msgs) > 0 {
				v.add(p+".operator", fmt.Sprintf("value %s is invalid: %s", v.q(value), strings.Join(msgs, "; ")))
			}
		case "Exists":
			if value != "" {
				v.add(p+".operator", "value must be empty when operator is Exists (leave value out, or write operator: Equal)")
			}
		default:
			v.oneOf(p+".operator", t.field("operator"), "Equal", "Exists")
		}
		v.oneOf(p+".effect", t.field("effect"), "", "NoSchedule", "PreferNoSchedule", "NoExecute")
	}
}

// dnsConfig checks spec.dnsConfig, which dnsPolicy None requires
// (validatePodDNSConfig).
func (v *podValidator) dnsConfig(dc *node, policy string) {
	const p = "spec.dnsConfig"
	nameservers := dc.field("nameservers").list()
	if policy == "None" {
		switch {
		case !present(dc):
			v.add(p, "is required when dnsPolicy is None (give dnsConfig.nameservers, or another dnsPolicy)")
			return
		case len(nameservers) == 0:
			v.add(p+".nameservers", "must give at least one DNS nameserver when dnsPolicy is None")
			return
		}
	}
	if len(nameservers) > 3 {
		v.add(p+".nameservers", fmt.Sprintf("has %d nameservers, more than 3", len(nameservers)))
	}
	for i, ns := range nameservers {
		// Strict, as the StrictIPCIDRValidation gate (beta in v1.36) has it.
		np := field.NewPath("spec", "dnsConfig", "nameservers").Index(i)
		for _, e := range validation.IsValidIPForLegacyField(np, ns.str(), true, nil) {
			v.add(np.String(), fmt.Sprintf("%s is invalid: %s", v.q(ns.str()), e.Detail))
		}
	}
	searches := dc.field("searches").list()
	var all []string
	for _, s := range searches {
		all = append(all, s.str())
	}
	if len(searches) > 32 {
		v.add(p+".searches", fmt.Sprintf("has %d search paths, more than 32", len(searches)))
	}
	if n := len(strings.Join(all, " ")); n > 2048 {
		v.add(p+".searches", fmt.Sprintf("has %d characters (including spaces), more than 2048", n))
	}
	for i, s := range all {
		if s != "." {
			v.check(fmt.Sprintf("%s.searches[%d]", p, i), s, validation.IsDNS1123SubdomainWithUnderscore(strings.TrimSuffix(s, ".")))
		}
	}
	for i, o := range dc.field("options").list() {
		if o.field("name").str() == "" {
			v.add(fmt.Sprintf("%s.options[%d]", p, i), "must not be empty (give the option's name)")
		}
	}
}

// containerRules checks a container's env, resources, probes and
// securityContext; init says it is one of spec.initContainers.
func (v *podValidator) containerRules(p string, c *node, init bool) {
	for i, e := range c.field("env").list() {
		v.env(fmt.Sprintf("%s.env[%d]", p, i), e)
	}
	v.resources(p+".resources", c.field("resources"))
	probes := []string{"livenessProbe", "readinessProbe", "startupProbe"}
	if init && c.field("restartPolicy").str() != "Always" {
		for _, f := range append([]string{"lifecycle"}, probes...) {
			if present(c.field(f)) {
				v.add(p+"."+f, "may not be set for init containers without restartPolicy=Always")
			}
		}
	} else {
		for _, f := range probes {
			v.probe(p+"."+f, c.field(f), f)
		}
	}
	v.securityContext(p+".securityContext", c.field("securityContext"))
}

// env checks one environment variable: its name (any printable ASCII but
// "=", since RelaxedEnvironmentVariableValidation went GA in v1.34) and
// its valueFrom.
func (v *podValidator) env(p string, e *node) {
	if name := e.field("name").str(); name != "" {
		v.check(p+".name", name, validation.IsRelaxedEnvVarName(name))
	}
	from := e.field("valueFrom")
	if !present(from) {
		return
	}
	sources := 0
	for _, k := range []string{"fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef"} {
		if present(from.field(k)) {
			sources++
		}
	}
	switch {
	case sources == 0:
		v.add(p+".valueFrom", "must specify one of: fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef or fileKeyRef")
	case e.field("value").str() != "":
		v.add(p+".valueFrom", "may not be specified when value is not empty (give value or valueFrom, not both)")
	case sources > 1:
		v.add(p+".valueFrom", "may not have more than one field specified at a time")
	}
}

// resources checks a container's limits and requests: resource names,
// quantities, and each request against its limit. Requests default to
// the limits, so only a request given beside its limit can exceed it.
func (v *podValidator) resources(p string, r *node) {
	limits, requests := r.field("limits"), r.field("requests")
	limit := map[string]resource.Quantity{}
	limitText := map[string]string{}
	var hugePages, cpuOrMemory bool
	for _, part := range []struct {
		name string
		n    *node
	}{{"limits", limits}, {"requests", requests}} {
		keys := part.n.objKeys()
		for i, name := range keys {
			kp := p + "." + part.name + v.key(name, i, len(keys))
			v.resourceName(kp, name)
			text := part.n.elems[i].text // a string or a number; checkStrict has parsed it
			q, err := resource.ParseQuantity(text)
			if err != nil {
				continue
			}
			if q.Sign() < 0 {
				v.add(kp, fmt.Sprintf("%s must be greater than or equal to 0", v.q(text)))
			}
			if isExtendedResource(name) && q.MilliValue()%1000 != 0 {
				v.add(kp, fmt.Sprintf("%s must be an integer", v.q(text)))
			}
			hugePages = hugePages || strings.HasPrefix(name, "hugepages-")
			cpuOrMemory = cpuOrMemory || name == "cpu" || name == "memory"
			if part.name == "limits" {
				limit[name], limitText[name] = q, text
				continue
			}
			lim, ok := limit[name]
			res := name
			if v.hide {
				res = hiddenKey(i, len(keys))
			}
			switch {
			case !ok && !overcommitAllowed(name):
				v.add(p+".limits", fmt.Sprintf("must be set for %s, a resource that cannot be overcommitted (give a limit equal to the request)", res))
			case !ok:
			case !overcommitAllowed(name) && q.Cmp(lim) != 0:
				v.add(p+".requests", v.request(text, res, "equal to", limitText[name]))
			case q.Cmp(lim) > 0:
				v.add(p+".requests", v.request(text, res, "less than or equal to", limitText[name]))
			}
		}
	}
	if hugePages && !cpuOrMemory {
		v.add(p, "HugePages require cpu or memory (give a cpu or memory limit or request too)")
	}
}

// request is the message for a request of resource res that is not cmp
// its limit.
func (v *podValidator) request(text, res, cmp, limit string) string {
	if v.hide {
		return fmt.Sprintf("the request for %s must be %s its limit %s", res, cmp, hiddenValue)
	}
	return fmt.Sprintf("%q must be %s %s limit of %q", text, cmp, res, limit)
}

// resourceName checks the name of a container's resource
// (ValidateContainerResourceName).
func (v *podValidator) resourceName(p, name string) {
	if msgs := content.IsLabelKey(name); len(msgs) > 0 {
		v.add(p, fmt.Sprintf("%s is invalid: %s", v.q(name), strings.Join(msgs, "; ")))
		return
	}
	switch {
	case !strings.Contains(name, "/"):
		if !slices.Contains([]string{"cpu", "memory", "ephemeral-storage"}, name) && !strings.HasPrefix(name, "hugepages-") {
			v.add(p, fmt.Sprintf("%s must be a standard resource for containers (cpu, memory, ephemeral-storage or hugepages-<size>)", v.q(name)))
		}
	case !isNativeResource(name) && !isExtendedResource(name):
		v.add(p, fmt.Sprintf("%s doesn't follow extended resource name standard (write such as \"example.com/device\")", v.q(name)))
	}
}

// isNativeResource, isExtendedResource and overcommitAllowed are
// k8s.io/kubernetes' IsNativeResource, IsExtendedResourceName and
// IsOvercommitAllowed.
func isNativeResource(name string) bool {
	return !strings.Contains(name, "/") || strings.Contains(name, "kubernetes.io/")
}

func isExtendedResource(name string) bool {
	return !isNativeResource(name) && !strings.HasPrefix(name, "requests.") && len(content.IsLabelKey("requests."+name)) == 0
}

func overcommitAllowed(name string) bool {
	return isNativeResource(name) && !strings.HasPrefix(name, "hugepages-")
}

// probe checks a probe (validateProbe): exactly one handler, its port,
// timings that are not negative, and a successThreshold of 1 for a
// liveness or startup probe.
func (v *podValidator) probe(p string, n *node, kind string) {
	if !present(n) {
		return
	}
	handlers := 0
	for _, h := range []string{"exec", "httpGet", "tcpSocket", "grpc"} {
		hn := n.field(h)
		if !present(hn) {
			continue
		}
		handlers++
		if handlers > 1 {
			v.add(p+"."+h, "may not specify more than 1 handler type (keep one of exec, httpGet, tcpSocket and grpc)")
			continue
		}
		switch h {
		case "exec":
			if len(hn.field("command").list()) == 0 {
				v.add(p+".exec.command", "is missing (give the command to run)")
			}
		case "httpGet":
			v.portNumOrName(p+".httpGet.port", hn.field("port"))
			v.oneOf(p+".httpGet.scheme", hn.field("scheme"), "", "HTTP", "HTTPS")
			for _, hd := range hn.field("httpHeaders").list() {
				name := hd.field("name").str()
				v.check(p+".httpGet.httpHeaders", name, validation.IsHTTPHeaderName(name))
			}
		case "tcpSocket":
			v.portNumOrName(p+".tcpSocket.port", hn.field("port"))
		case "grpc":
			port, _ := hn.field("port").integer()
			if msgs := validation.IsValidPortNum(int(port)); len(msgs) > 0 {
				v.add(p+".grpc.port", v.num(port)+" "+strings.Join(msgs, "; "))
			}
		}
	}
	if handlers == 0 {
		v.add(p, "must specify a handler type (give one of exec, httpGet, tcpSocket and grpc)")
	}
	for _, f := range []string{"initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"} {
		if i, ok := n.field(f).integer(); ok && i < 0 {
			v.add(p+"."+f, v.num(i)+" must be greater than or equal to 0")
		}
	}
	if i, ok := n.field("terminationGracePeriodSeconds").integer(); ok {
		if kind == "readinessProbe" {
			v.add(p+".terminationGracePeriodSeconds", "must not be set for readinessProbes")
		} else if i <= 0 {
			v.add(p+".terminationGracePeriodSeconds", v.num(i)+" must be greater than 0")
		}
	}
	// 0 is defaulted to 1.
	if i, ok := n.field("successThreshold").integer(); ok && i != 0 && i != 1 && kind != "readinessProbe" {
		v.add(p+".successThreshold", v.num(i)+" must be 1 for a "+strings.TrimSuffix(kind, "Probe")+" probe")
	}
}

// portNumOrName checks an IntOrString port: a number 1-65535 or a port
// name. A missing port is the number 0.
func (v *podValidator) portNumOrName(p string, n *node) {
	if n != nil && n.kind == 's' {
		v.check(p, n.text, validation.IsValidPortName(n.text))
		return
	}
	port, _ := n.integer()
	if msgs := validation.IsValidPortNum(int(port)); len(msgs) > 0 {
		v.add(p, fmt.Sprintf("%s %s", v.num(port), strings.Join(msgs, "; ")))
	}
}

// securityContext checks a container's securityContext
// (ValidateSecurityContext): user and group IDs, and no privilege
// escalation refused to a container that has it anyway.
func (v *podValidator) securityContext(p string, sc *node) {
	v.id(p+".runAsUser", sc.field("runAsUser"), validation.IsValidUserID)
	v.id(p+".runAsGroup", sc.field("runAsGroup"), validation.IsValidGroupID)
	if !isFalse(sc.field("allowPrivilegeEscalation")) {
		return
	}
	if isTrue(sc.field("privileged")) {
		v.add(p, "cannot set allowPrivilegeEscalation to false and privileged to true (a privileged container has every privilege; drop one of them)")
	}
	for _, c := range sc.field("capabilities").field("add").list() {
		if c.str() == "CAP_SYS_ADMIN" {
			v.add(p, "cannot set allowPrivilegeEscalation to false and capabilities.add CAP_SYS_ADMIN")
		}
	}
}
