package builtins

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kplay-dev/kplay/host/hostiletest"
)

// issuePod is the example of issue 12, item 8: a manifest the kubelet
// refuses, so the API server it should run never starts.
const issuePod = `apiVersion: v1
kind: Pod
metadata:
  name: Kube_Apiserver
  namespace: kube-system
spec:
  hostNetwork: true
  containers:
  - name: kube-apiserver
    image: quay.io/coreos/hyperkube:v1.4.0_coreos.0
    ports:
    - containerPort: 70000
      name: https
    volumeMounts:
    - mountPath: /etc/kubernetes/ssl
      name: ssl-certs-kubernets
  volumes:
  - hostPath:
      path: /etc/kubernetes/ssl
    name: ssl-certs-kubernetes
`

func TestValidatePod(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ pod, wantErr string }{
		"issue_example": {issuePod, `metadata.name: "Kube_Apiserver" is not a DNS-1123 subdomain: ` +
			`a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'); ` +
			`spec.containers[0].ports[0].containerPort: 70000 is out of range (1-65535); ` +
			`spec.containers[0].volumeMounts[0].name: "ssl-certs-kubernets" names no volume in spec.volumes (did you mean "ssl-certs-kubernetes"?)`},
		"host_port_differs": {strings.Replace(schedulerPod, "    livenessProbe:", "    ports:\n    - containerPort: 10251\n      hostPort: 8080\n    livenessProbe:", 1),
			`spec.containers[0].ports[0].hostPort: 8080 must equal containerPort 10251 when hostNetwork is true (leave it out, or write 10251)`},
		"duplicate_container": {strings.Replace(schedulerPod, "  containers:\n", "  containers:\n  - name: kube-scheduler\n    image: busybox\n", 1),
			`spec.containers[1].name: "kube-scheduler" is a duplicate (each container needs its own name)`},
		"bad_label": {strings.Replace(schedulerPod, "  namespace: kube-system\n", "  namespace: kube-system\n  labels:\n    tier: -control\n", 1),
			`metadata.labels["tier"]: "-control" is invalid: a valid label must be`},
		"no_host_network": {strings.Replace(schedulerPod, "  hostNetwork: true\n", "", 1), ""},
		"bad_pull_policy": {strings.Replace(schedulerPod, "    command:", "    imagePullPolicy: always\n    command:", 1),
			`spec.containers[0].imagePullPolicy: "always" is not supported (write one of "Always", "IfNotPresent", "Never")`},

		// The minimal pod and one change, each refused by kube-apiserver
		// (TestPodRulesAgreeWithAPIServer has them all).
		"dns_none_without_config": {demoPod + "  dnsPolicy: None\n",
			`spec.dnsConfig: is required when dnsPolicy is None (give dnsConfig.nameservers, or another dnsPolicy)`},
		"active_deadline_0": {demoPod + "  activeDeadlineSeconds: 0\n",
			`spec.activeDeadlineSeconds: 0 must be between 1 and 2147483647, inclusive`},
		"cpu_request_over_limit": {demoPod + "    resources:\n      limits: {cpu: 100m}\n      requests: {cpu: 200m}\n",
			`spec.containers[0].resources.requests: "200m" must be less than or equal to cpu limit of "100m"`},
		"env_value_and_value_from": {demoPod + "    env:\n    - name: POD\n      value: x\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n",
			`spec.containers[0].env[0].valueFrom: may not be specified when value is not empty`},
		"probe_without_handler": {demoPod + "    livenessProbe: {periodSeconds: 5}\n",
			`spec.containers[0].livenessProbe: must specify a handler type`},
		"probe_port_0": {demoPod + "    livenessProbe: {httpGet: {port: 0}}\n",
			`spec.containers[0].livenessProbe.httpGet.port: 0 must be between 1 and 65535, inclusive`},
		"hostname_bad": {demoPod + "  hostname: Bad_Host\n",
			`spec.hostname: "Bad_Host" is not an RFC 1123 label: a lowercase RFC 1123 label must consist of`},
		"node_selector_bad_key": {demoPod + "  nodeSelector: {\"a b\": c}\n",
			`spec.nodeSelector["a b"]: key "a b" is invalid: name part must consist of`},
		"sysctl_bad_name": {demoPod + "  securityContext:\n    sysctls:\n    - {name: bad name, value: \"1\"}\n",
			`spec.securityContext.sysctls[0].name: "bad name" is an invalid sysctl name`},
		"sysctl_net_host_network": {demoPod + "  hostNetwork: true\n  securityContext:\n    sysctls:\n    - {name: net.ipv4.ip_forward, value: \"1\"}\n",
			`spec.securityContext.sysctls[0].name: "net.ipv4.ip_forward" may not be specified when hostNetwork is true`},
		"run_as_user_negative": {demoPod + "    securityContext: {runAsUser: -1}\n",
			`spec.containers[0].securityContext.runAsUser: -1 must be between 0 and 2147483647, inclusive`},
		"privileged_without_escalation": {demoPod + "    securityContext: {privileged: true, allowPrivilegeEscalation: false}\n",
			`spec.containers[0].securityContext: cannot set allowPrivilegeEscalation to false and privileged to true`},
		"toleration_exists_with_value": {demoPod + "  tolerations:\n  - {key: k, operator: Exists, value: v}\n",
			`spec.tolerations[0].operator: value must be empty when operator is Exists`},
		"ephemeral_containers": {demoPod + "  ephemeralContainers:\n  - {name: debug, image: busybox}\n",
			`spec.ephemeralContainers: cannot be set on create`},
		"minimal_pod": {demoPod, ""},

		// The kubelet names a static pod "<metadata.name>-<node name>"
		// before it validates it, so a name of 252 or 253 characters,
		// which the API server takes, never runs. No API server check
		// applies (it knows no node name), so these are held to the
		// kubelet's generatePodName and the 253 of a subdomain.
		"name_251_fits": {strings.Replace(demoPod, "name: demo", "name: "+strings.Repeat("a", 251), 1), ""},
		"name_252_too_long": {strings.Replace(demoPod, "name: demo", "name: "+strings.Repeat("a", 252), 1),
			`metadata.name: 252 characters is too long for a static pod: the kubelet names it "<metadata.name>-<node name>", which may have 253, so metadata.name may have 251 at most (shorten it)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := checkPod([]byte(tc.pod), false)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v\nwant ...%s", err, tc.wantErr)
			}
		})
	}
}

// guidePods returns the guide's five static pods as playbooks/master.star
// renders them.
func guidePods(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../testdata/golden/master-calico/etc/kubernetes/manifests/*.yaml")
	if err != nil || len(files) != 5 {
		t.Fatalf("the guide's five manifests: got %q, %v", files, err)
	}
	pods := map[string]string{}
	for _, f := range files {
		pods[strings.TrimSuffix(filepath.Base(f), ".yaml")] = readFile(t, f)
	}
	return pods
}

type obj = map[string]any

// podMutations change a pod; each returns false when it does not apply
// to the pod (it has no ports, no volumes).
var podMutations = map[string]func(p obj) bool{
	"unchanged": func(p obj) bool { return true },
	"init_reuses_host_port": func(p obj) bool {
		spec(p)["hostNetwork"] = true
		spec(p)["initContainers"] = []any{obj{"name": "init", "image": "busybox", "ports": []any{obj{"containerPort": 40123, "hostPort": 40123}}}}
		return eachContainer(p, func(c obj) { c["ports"] = []any{obj{"containerPort": 40123, "hostPort": 40123}} })
	},
	"inits_reuse_host_port": func(p obj) bool {
		spec(p)["hostNetwork"] = true
		port := []any{obj{"containerPort": 40124, "hostPort": 40124}}
		spec(p)["initContainers"] = []any{obj{"name": "init1", "image": "busybox", "ports": port}, obj{"name": "init2", "image": "busybox", "ports": port}}
		return true
	},
	"name_underscore":    func(p obj) bool { meta(p)["name"] = "Kube_Apiserver"; return true },
	"name_upper":         func(p obj) bool { meta(p)["name"] = "Kube-apiserver"; return true },
	"name_dotted":        func(p obj) bool { meta(p)["name"] = "kube.apiserver-1"; return true },
	"name_too_long":      func(p obj) bool { meta(p)["name"] = strings.Repeat("a", 254); return true },
	"name_trailing_dash": func(p obj) bool { meta(p)["name"] = "kube-"; return true },
	"label_ok": func(p obj) bool {
		meta(p)["labels"] = obj{"k8s-app": "kube-apiserver", "example.com/tier": ""}
		return true
	},
	"label_bad_key":          func(p obj) bool { meta(p)["labels"] = obj{"bad key": "x"}; return true },
	"label_bad_value":        func(p obj) bool { meta(p)["labels"] = obj{"tier": "-control"}; return true },
	"label_long_value":       func(p obj) bool { meta(p)["labels"] = obj{"tier": strings.Repeat("x", 64)}; return true },
	"annotation_bad_key":     func(p obj) bool { meta(p)["annotations"] = obj{"a/b/c": "x"}; return true },
	"annotation_upper_ok":    func(p obj) bool { meta(p)["annotations"] = obj{"Example.com/Seen": "x"}; return true },
	"container_port_70000":   func(p obj) bool { return eachPort(p, func(q obj) { q["containerPort"] = 70000 }) },
	"container_port_0":       func(p obj) bool { return eachPort(p, func(q obj) { q["containerPort"] = 0 }) },
	"container_port_missing": func(p obj) bool { return eachPort(p, func(q obj) { delete(q, "containerPort") }) },
	"host_port_70000":        func(p obj) bool { return eachPort(p, func(q obj) { q["hostPort"] = 70000 }) },
	"host_port_differs":      func(p obj) bool { return eachPort(p, func(q obj) { q["hostPort"] = 30001 }) },
	"host_port_differs_no_host_network": func(p obj) bool {
		spec(p)["hostNetwork"] = false
		return eachPort(p, func(q obj) { q["hostPort"] = 30001 })
	},
	"host_port_dropped":    func(p obj) bool { return eachPort(p, func(q obj) { delete(q, "hostPort") }) },
	"port_name_long":       func(p obj) bool { return eachPort(p, func(q obj) { q["name"] = "abcdefghijklmnop" }) },
	"port_name_upper":      func(p obj) bool { return eachPort(p, func(q obj) { q["name"] = "HTTPS" }) },
	"port_name_duplicate":  func(p obj) bool { return eachPort(p, func(q obj) { q["name"] = "web" }) && portCount(p) > 1 },
	"port_protocol_lower":  func(p obj) bool { return eachPort(p, func(q obj) { q["protocol"] = "tcp" }) },
	"port_protocol_sctp":   func(p obj) bool { return eachPort(p, func(q obj) { q["protocol"] = "SCTP" }) },
	"port_added_duplicate": func(p obj) bool { return addPort(p, obj{"containerPort": 10251}, obj{"containerPort": 10251}) },
	"port_added_new":       func(p obj) bool { return addPort(p, obj{"containerPort": 10259, "name": "metrics"}) },
	"mount_name_typo":      func(p obj) bool { return eachMount(p, func(m obj) { m["name"] = m["name"].(string) + "s" }) },
	"mount_name_missing":   func(p obj) bool { return eachMount(p, func(m obj) { delete(m, "name") }) },
	"mount_path_missing":   func(p obj) bool { return eachMount(p, func(m obj) { delete(m, "mountPath") }) },
	"mount_path_same":      func(p obj) bool { return eachMount(p, func(m obj) { m["mountPath"] = "/etc/x" }) },
	"mount_sub_path_up":    func(p obj) bool { return eachMount(p, func(m obj) { m["subPath"] = "../x" }) },
	"mount_sub_path_ok":    func(p obj) bool { return eachMount(p, func(m obj) { m["subPath"] = "a/b" }) },
	"volume_duplicate": func(p obj) bool {
		vols, _ := spec(p)["volumes"].([]any)
		if len(vols) == 0 {
			return false
		}
		spec(p)["volumes"] = append(vols, vols[0])
		return true
	},
	"volume_name_bad": func(p obj) bool {
		return eachVolume(p, func(v obj) { v["name"] = "Ssl_" + v["name"].(string) }) && eachMount(p, func(m obj) { m["name"] = "Ssl_" + m["name"].(string) })
	},
	"volume_no_source":     func(p obj) bool { return eachVolume(p, func(v obj) { delete(v, "hostPath") }) },
	"volume_two_sources":   func(p obj) bool { return eachVolume(p, func(v obj) { v["emptyDir"] = obj{} }) },
	"volume_path_missing":  func(p obj) bool { return eachVolume(p, func(v obj) { v["hostPath"] = obj{"path": ""} }) },
	"volume_path_dotdot":   func(p obj) bool { return eachVolume(p, func(v obj) { v["hostPath"] = obj{"path": "/etc/../x"} }) },
	"volume_path_type_bad": func(p obj) bool { return eachVolume(p, func(v obj) { v["hostPath"].(obj)["type"] = "Dir" }) },
	"volume_path_type_ok":  func(p obj) bool { return eachVolume(p, func(v obj) { v["hostPath"].(obj)["type"] = "Directory" }) },
	"volume_unused": func(p obj) bool {
		spec(p)["volumes"] = append(list(spec(p)["volumes"]), obj{"name": "spare", "emptyDir": obj{}})
		return true
	},
	"container_duplicate": func(p obj) bool {
		cs := list(spec(p)["containers"])
		spec(p)["containers"] = append(cs, cs[0])
		return true
	},
	"container_name_bad":     func(p obj) bool { return eachContainer(p, func(c obj) { c["name"] = "Kube_" + c["name"].(string) }) },
	"container_name_missing": func(p obj) bool { return eachContainer(p, func(c obj) { delete(c, "name") }) },
	"image_missing":          func(p obj) bool { return eachContainer(p, func(c obj) { delete(c, "image") }) },
	"image_space":            func(p obj) bool { return eachContainer(p, func(c obj) { c["image"] = " " + c["image"].(string) }) },
	"pull_policy_lower":      func(p obj) bool { return eachContainer(p, func(c obj) { c["imagePullPolicy"] = "always" }) },
	"termination_policy_bad": func(p obj) bool { return eachContainer(p, func(c obj) { c["terminationMessagePolicy"] = "Logs" }) },
	"env_name_missing":       func(p obj) bool { return eachContainer(p, func(c obj) { c["env"] = []any{obj{"value": "x"}} }) },
	"init_same_name": func(p obj) bool {
		spec(p)["initContainers"] = []any{obj{"name": list(spec(p)["containers"])[0].(obj)["name"], "image": "busybox"}}
		return true
	},
	"restart_policy_bad": func(p obj) bool { spec(p)["restartPolicy"] = "Sometimes"; return true },
	"restart_policy_ok":  func(p obj) bool { spec(p)["restartPolicy"] = "OnFailure"; return true },
	"dns_policy_bad":     func(p obj) bool { spec(p)["dnsPolicy"] = "Cluster"; return true },
	"dns_policy_ok":      func(p obj) bool { spec(p)["dnsPolicy"] = "ClusterFirstWithHostNet"; return true },

	"dns_none_no_config": func(p obj) bool { spec(p)["dnsPolicy"] = "None"; return true },
	"dns_none_no_nameservers": func(p obj) bool {
		spec(p)["dnsPolicy"], spec(p)["dnsConfig"] = "None", obj{"searches": []any{"example.com"}}
		return true
	},
	"dns_none_ok": func(p obj) bool {
		spec(p)["dnsPolicy"], spec(p)["dnsConfig"] = "None", obj{"nameservers": []any{"10.0.0.1"}, "searches": []any{"example.com."}}
		return true
	},
	"dns_nameserver_bad":          func(p obj) bool { spec(p)["dnsConfig"] = obj{"nameservers": []any{"10.0.0.300"}}; return true },
	"dns_nameserver_leading_zero": func(p obj) bool { spec(p)["dnsConfig"] = obj{"nameservers": []any{"010.0.0.1"}}; return true },
	"dns_nameservers_four": func(p obj) bool {
		spec(p)["dnsConfig"] = obj{"nameservers": []any{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}}
		return true
	},
	"dns_search_bad":        func(p obj) bool { spec(p)["dnsConfig"] = obj{"searches": []any{"Bad Domain"}}; return true },
	"dns_option_no_name":    func(p obj) bool { spec(p)["dnsConfig"] = obj{"options": []any{obj{"value": "2"}}}; return true },
	"active_deadline_0":     func(p obj) bool { spec(p)["activeDeadlineSeconds"] = 0; return true },
	"active_deadline_60":    func(p obj) bool { spec(p)["activeDeadlineSeconds"] = 60; return true },
	"active_deadline_huge":  func(p obj) bool { spec(p)["activeDeadlineSeconds"] = int64(1) << 31; return true },
	"hostname_bad":          func(p obj) bool { spec(p)["hostname"] = "Bad_Host"; return true },
	"hostname_ok":           func(p obj) bool { spec(p)["hostname"] = "demo-host"; return true },
	"subdomain_bad":         func(p obj) bool { spec(p)["subdomain"] = "a.b"; return true },
	"node_selector_bad_key": func(p obj) bool { spec(p)["nodeSelector"] = obj{"a b": "c"}; return true },
	"node_selector_bad_value": func(p obj) bool {
		spec(p)["nodeSelector"] = obj{"kubernetes.io/os": "linux os"}
		return true
	},
	"node_selector_ok": func(p obj) bool { spec(p)["nodeSelector"] = obj{"kubernetes.io/os": "linux"}; return true },
	"sysctl_bad_name": func(p obj) bool {
		podSC(p)["sysctls"] = []any{obj{"name": "bad name", "value": "1"}}
		return true
	},
	"sysctl_missing_name": func(p obj) bool { podSC(p)["sysctls"] = []any{obj{"value": "1"}}; return true },
	"sysctl_duplicate": func(p obj) bool {
		podSC(p)["sysctls"] = []any{obj{"name": "kernel.shm_rmid_forced", "value": "1"}, obj{"name": "kernel.shm_rmid_forced", "value": "0"}}
		return true
	},
	"sysctl_ok": func(p obj) bool {
		podSC(p)["sysctls"] = []any{obj{"name": "kernel.shm_rmid_forced", "value": "1"}}
		return true
	},
	"sysctl_net": func(p obj) bool { // refused beside hostNetwork only
		podSC(p)["sysctls"] = []any{obj{"name": "net/ipv4/ip_local_port_range", "value": "1024 65000"}}
		return true
	},
	"sysctl_ipc_host_ipc": func(p obj) bool {
		spec(p)["hostIPC"] = true
		podSC(p)["sysctls"] = []any{obj{"name": "kernel.msgmax", "value": "65536"}}
		return true
	},
	"pod_run_as_user_negative": func(p obj) bool { podSC(p)["runAsUser"] = -1; return true },
	"pod_fs_group_negative":    func(p obj) bool { podSC(p)["fsGroup"] = -1; return true },
	"pod_supplemental_group_negative": func(p obj) bool {
		podSC(p)["supplementalGroups"] = []any{1000, -1}
		return true
	},
	"run_as_user_negative": func(p obj) bool { return eachContainer(p, func(c obj) { containerSC(c)["runAsUser"] = -1 }) },
	"run_as_user_ok":       func(p obj) bool { return eachContainer(p, func(c obj) { containerSC(c)["runAsUser"] = 1000 }) },
	"run_as_group_huge": func(p obj) bool {
		return eachContainer(p, func(c obj) { containerSC(c)["runAsGroup"] = int64(1) << 31 })
	},
	"privileged_no_escalation": func(p obj) bool {
		return eachContainer(p, func(c obj) { containerSC(c)["privileged"], containerSC(c)["allowPrivilegeEscalation"] = true, false })
	},
	"no_escalation_ok": func(p obj) bool {
		return eachContainer(p, func(c obj) { delete(containerSC(c), "privileged"); containerSC(c)["allowPrivilegeEscalation"] = false })
	},
	"sys_admin_no_escalation": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			delete(containerSC(c), "privileged")
			containerSC(c)["allowPrivilegeEscalation"] = false
			containerSC(c)["capabilities"] = obj{"add": []any{"CAP_SYS_ADMIN"}}
		})
	},
	"toleration_exists_value": func(p obj) bool {
		spec(p)["tolerations"] = []any{obj{"key": "k", "operator": "Exists", "value": "v"}}
		return true
	},
	"toleration_exists_ok": func(p obj) bool { spec(p)["tolerations"] = []any{obj{"operator": "Exists"}}; return true },
	"toleration_no_key":    func(p obj) bool { spec(p)["tolerations"] = []any{obj{"value": "v"}}; return true },
	"toleration_bad_key":   func(p obj) bool { spec(p)["tolerations"] = []any{obj{"key": "a b", "value": "v"}}; return true },
	"toleration_bad_value": func(p obj) bool { spec(p)["tolerations"] = []any{obj{"key": "k", "value": "v w"}}; return true },
	"toleration_lt": func(p obj) bool {
		spec(p)["tolerations"] = []any{obj{"key": "k", "operator": "Lt", "value": "5"}}
		return true
	},
	"toleration_bad_effect": func(p obj) bool { spec(p)["tolerations"] = []any{obj{"key": "k", "effect": "NoRun"}}; return true },
	"toleration_seconds": func(p obj) bool {
		spec(p)["tolerations"] = []any{obj{"key": "k", "operator": "Exists", "tolerationSeconds": 30}}
		return true
	},
	"toleration_seconds_ok": func(p obj) bool {
		spec(p)["tolerations"] = []any{obj{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}}
		return true
	},
	"ephemeral_containers": func(p obj) bool {
		spec(p)["ephemeralContainers"] = []any{obj{"name": "debug", "image": "busybox"}}
		return true
	},
	"cpu_request_over_limit": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"cpu": "100m"}, "requests": obj{"cpu": "200m"}} })
	},
	"cpu_request_under_limit": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"cpu": "1"}, "requests": obj{"cpu": "200m"}} })
	},
	"memory_limit_only": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"memory": "128Mi"}} })
	},
	"memory_request_over_limit_numbers": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"memory": 1000}, "requests": obj{"memory": "1k"}} })
	},
	"memory_request_negative": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"requests": obj{"memory": "-1Mi"}} })
	},
	"resource_not_standard": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"cpus": "1"}} })
	},
	"resource_extended_fraction": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"example.com/dev": "500m"}} })
	},
	"resource_extended_no_limit": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"requests": obj{"example.com/dev": "1"}} })
	},
	"resource_extended_ok": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"example.com/dev": "2"}} })
	},
	"resource_hugepages_alone": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["resources"] = obj{"limits": obj{"hugepages-2Mi": "4Mi"}} })
	},
	"env_value_and_value_from": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["env"] = []any{obj{"name": "POD", "value": "x", "valueFrom": obj{"fieldRef": obj{"fieldPath": "metadata.name"}}}}
		})
	},
	"env_value_from_ok": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["env"] = []any{obj{"name": "POD", "valueFrom": obj{"fieldRef": obj{"fieldPath": "metadata.name"}}}}
		})
	},
	"env_value_from_empty": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["env"] = []any{obj{"name": "POD", "valueFrom": obj{}}} })
	},
	"env_value_from_two": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["env"] = []any{obj{"name": "POD", "valueFrom": obj{
				"fieldRef":        obj{"fieldPath": "metadata.name"},
				"configMapKeyRef": obj{"name": "cm", "key": "k"},
			}}}
		})
	},
	"env_name_relaxed": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["env"] = []any{obj{"name": "1 x.y", "value": "v"}} })
	},
	"env_name_equals": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["env"] = []any{obj{"name": "A=B", "value": "v"}} })
	},
	"probe_no_handler": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"periodSeconds": 5} })
	},
	"probe_http_port_0": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"httpGet": obj{"port": 0}} })
	},
	"probe_http_port_missing": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["readinessProbe"] = obj{"httpGet": obj{"path": "/healthz"}} })
	},
	"probe_http_port_name": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["readinessProbe"] = obj{"httpGet": obj{"port": "https"}} })
	},
	"probe_http_port_name_bad": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["readinessProbe"] = obj{"httpGet": obj{"port": "HTTPS"}} })
	},
	"probe_http_scheme_bad": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"httpGet": obj{"port": 80, "scheme": "http"}} })
	},
	"probe_http_header_bad": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["livenessProbe"] = obj{"httpGet": obj{"port": 80, "httpHeaders": []any{obj{"name": "X Bad", "value": "1"}}}}
		})
	},
	"probe_two_handlers": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["livenessProbe"] = obj{"tcpSocket": obj{"port": 80}, "exec": obj{"command": []any{"true"}}}
		})
	},
	"probe_exec_empty": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["startupProbe"] = obj{"exec": obj{}} })
	},
	"probe_grpc_port_0": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"grpc": obj{"port": 0}} })
	},
	"probe_grpc_ok": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"grpc": obj{"port": 9090}} })
	},
	"probe_period_negative": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"tcpSocket": obj{"port": 80}, "periodSeconds": -1} })
	},
	"probe_liveness_success_2": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["livenessProbe"] = obj{"tcpSocket": obj{"port": 80}, "successThreshold": 2} })
	},
	"probe_readiness_success_2": func(p obj) bool {
		return eachContainer(p, func(c obj) { c["readinessProbe"] = obj{"tcpSocket": obj{"port": 80}, "successThreshold": 2} })
	},
	"probe_readiness_grace": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["readinessProbe"] = obj{"tcpSocket": obj{"port": 80}, "terminationGracePeriodSeconds": 5}
		})
	},
	"probe_liveness_grace_0": func(p obj) bool {
		return eachContainer(p, func(c obj) {
			c["livenessProbe"] = obj{"tcpSocket": obj{"port": 80}, "terminationGracePeriodSeconds": 0}
		})
	},
	"init_container_probe": func(p obj) bool {
		spec(p)["initContainers"] = []any{obj{"name": "init", "image": "busybox", "livenessProbe": obj{"tcpSocket": obj{"port": 80}}}}
		return true
	},
	"init_container_sidecar_probe": func(p obj) bool {
		spec(p)["initContainers"] = []any{obj{"name": "init", "image": "busybox", "restartPolicy": "Always", "livenessProbe": obj{"tcpSocket": obj{"port": 80}}}}
		return true
	},
}

// demoPod is the smallest pod, the base of the cases that name one rule.
const demoPod = `apiVersion: v1
kind: Pod
metadata:
  name: demo
spec:
  containers:
  - name: c
    image: busybox
`

// podSC returns the pod's securityContext, made if missing.
func podSC(p obj) obj {
	if sc, ok := spec(p)["securityContext"].(obj); ok {
		return sc
	}
	sc := obj{}
	spec(p)["securityContext"] = sc
	return sc
}

// containerSC returns a container's securityContext, made if missing.
func containerSC(c obj) obj {
	if sc, ok := c["securityContext"].(obj); ok {
		return sc
	}
	sc := obj{}
	c["securityContext"] = sc
	return sc
}

func meta(p obj) obj { return p["metadata"].(obj) }
func spec(p obj) obj { return p["spec"].(obj) }

func list(v any) []any { l, _ := v.([]any); return l }

func eachContainer(p obj, f func(obj)) bool {
	for _, c := range list(spec(p)["containers"]) {
		f(c.(obj))
	}
	return true
}

func eachPort(p obj, f func(obj)) bool {
	n := 0
	eachContainer(p, func(c obj) {
		for _, q := range list(c["ports"]) {
			f(q.(obj))
			n++
		}
	})
	return n > 0
}

func portCount(p obj) int {
	n := 0
	eachPort(p, func(obj) { n++ })
	return n
}

func addPort(p obj, ports ...obj) bool {
	c := list(spec(p)["containers"])[0].(obj)
	for _, q := range ports {
		c["ports"] = append(list(c["ports"]), q)
	}
	return true
}

func eachMount(p obj, f func(obj)) bool {
	n := 0
	eachContainer(p, func(c obj) {
		for _, m := range list(c["volumeMounts"]) {
			f(m.(obj))
			n++
		}
	})
	return n > 0
}

func eachVolume(p obj, f func(obj)) bool {
	vols := list(spec(p)["volumes"])
	for _, v := range vols {
		f(v.(obj))
	}
	return len(vols) > 0
}

// TestPodRulesAgreeWithAPIServer sends the guide's five pods, each
// mutated in many ways, to a real kube-apiserver as a server-side dry-run
// create, and holds checkPod to its answers: a pod it refuses as Invalid
// (the rules ValidatePodCreate applies, which the kubelet applies to
// static pods too) checkPod refuses; a pod it accepts, checkPod accepts.
// Admission (ServiceAccount) is turned off: it does not apply to static
// pods. Privileged containers are allowed, as the guide's kubelet allows
// them.
func TestPodRulesAgreeWithAPIServer(t *testing.T) {
	t.Parallel()
	s := startAPIServer(t)
	if code, body := s.post(t, "/api/v1/namespaces", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"calico-system"}}`)); code != 201 {
		t.Fatalf("create namespace calico-system: %d %s", code, body)
	}
	pods := guidePods(t)
	pods["demo"] = demoPod
	var cases, refused int
	for _, podName := range slices.Sorted(maps.Keys(pods)) {
		for _, mut := range slices.Sorted(maps.Keys(podMutations)) {
			var p obj
			if err := yaml.Unmarshal([]byte(pods[podName]), &p); err != nil {
				t.Fatal(err)
			}
			if !podMutations[mut](p) {
				continue
			}
			cases++
			text, err := yaml.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			body, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			ns, _ := meta(p)["namespace"].(string)
			if ns == "" {
				ns = "default" // as the kubelet defaults it
			}
			code, answer := s.post(t, "/api/v1/namespaces/"+ns+"/pods?dryRun=All", body)
			_, kerr := checkPod(text, false)
			switch {
			case code == http.StatusUnprocessableEntity:
				refused++
				if kerr == nil {
					t.Errorf("%s/%s: kube-apiserver refuses it, checkPod accepts it: %s", podName, mut, answer)
				}
			case code == http.StatusCreated:
				if kerr != nil {
					t.Errorf("%s/%s: kube-apiserver accepts it, checkPod refuses it: %v", podName, mut, kerr)
				}
			default:
				t.Errorf("%s/%s: kube-apiserver answers %d (not a validation answer): %s", podName, mut, code, answer)
			}
		}
	}
	t.Logf("%d pods, %d refused by kube-apiserver as invalid", cases, refused)
}

// apiServer is a kube-apiserver with its own etcd, as in host/kube's
// tests (the helper there is not importable from here).
type apiServer struct {
	url, token string
	http       *http.Client
}

func (s *apiServer) post(t *testing.T, path string, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiserverBinary finds kube-apiserver as host/kube's tests do:
// $KPLAY_KUBE_APISERVER, else what .ci/kube-apiserver builds.
func apiserverBinary(t *testing.T) string {
	if p := os.Getenv("KPLAY_KUBE_APISERVER"); p != "" {
		return p
	}
	cache := os.Getenv("KPLAY_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Skipf("kube-apiserver not built (run bash .ci/kube-apiserver): %v", err)
		}
		cache = filepath.Join(home, ".cache", "kplay")
	}
	p := filepath.Join(cache, "kube-apiserver-v1.37.2")
	if _, err := os.Stat(p); err != nil {
		t.Skip("kube-apiserver not built (run bash .ci/kube-apiserver)")
	}
	return p
}

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	bin := apiserverBinary(t)
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server)")
	}
	dir := t.TempDir()
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	s := &apiServer{token: hex.EncodeToString(tok), http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}}
	client, peer := hostiletest.DeadAddr(t), hostiletest.DeadAddr(t)
	startServer(t, dir, etcdBin, "--name=kplay-test", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://"+client, "--advertise-client-urls=http://"+client,
		"--listen-peer-urls=http://"+peer, "--initial-advertise-peer-urls=http://"+peer,
		"--initial-cluster=kplay-test=http://"+peer)
	writeTestFile(t, filepath.Join(dir, "tokens.csv"), s.token+",admin,1000,system:masters\n")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	writeTestFile(t, saKey, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	addr := hostiletest.DeadAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	s.url = "https://" + addr
	kas := startServer(t, dir, bin,
		"--etcd-servers=http://"+client, "--cert-dir="+filepath.Join(dir, "certs"),
		"--bind-address=127.0.0.1", "--secure-port="+port,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"), "--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount", "--allow-privileged=true")
	deadline := time.Now().Add(90 * time.Second)
	for {
		if ready(t.Context(), s) {
			return s
		}
		select {
		case <-kas:
			t.Fatalf("kube-apiserver exited; see %s", filepath.Join(dir, "kube-apiserver-v1.37.2.log"))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ready(ctx context.Context, s *apiServer) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/readyz", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && string(b) == "ok"
}

// startServer starts bin with its output in a log in dir, and stops it
// when the test ends; the channel is closed when it exits.
func startServer(t *testing.T, dir, bin string, args ...string) <-chan struct{} {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, filepath.Base(bin)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return exited
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", path, err))
	}
}
