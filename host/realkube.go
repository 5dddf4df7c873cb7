package host

import "fmt"

// Kube returns what the factory given with WithKube makes of cfg, its error
// as it is. A client is made once per configuration and kept, so the
// steps of a plan share its discovery cache. Without a factory it returns
// an error: this build has no Kubernetes client.
func (r *Real) Kube(cfg KubeConfig) (Kube, error) {
	if r.kube == nil {
		return nil, fmt.Errorf("kubernetes %s: no Kubernetes client (this build of kplay cannot talk to API servers)", kubeTarget(cfg))
	}
	r.kubeMu.Lock()
	defer r.kubeMu.Unlock()
	// A fleet host's shipped copies.
	cfg.Kubeconfig, cfg.TLS = r.local.Path(cfg.Kubeconfig), r.local.TLS(cfg.TLS)
	return keepOne(&r.kubeClients, cfg, func() (Kube, error) { return r.kube(cfg) })
}

// kubeTarget names the API server of cfg in messages.
func kubeTarget(cfg KubeConfig) string {
	switch {
	case cfg.Kubeconfig != "":
		return "kubeconfig " + cfg.Kubeconfig
	case cfg.Server != "":
		return cfg.Server
	}
	return "(no server or kubeconfig given)"
}
