package kube

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// loadKubeconfig reads the kubeconfig at path, and nothing else, and
// returns the REST configuration of its current context and that
// context's namespace ("default" if it names none).
//
// client-go's usual loader (clientcmd's deferred loading) falls back to
// the pod's service account when the file it loads is empty and
// KUBERNETES_SERVICE_HOST and _PORT are set, and takes the namespace
// from POD_NAMESPACE: kplay run inside a pod would act with the pod's
// identity on the pod's cluster, not the one the playbook names.
// loadKubeconfig reads the one file and builds the configuration with
// clientcmd's direct config alone, which consults no environment
// variable and no file other than those the kubeconfig names (relative
// names are relative to the kubeconfig's directory).
func loadKubeconfig(path string) (*rest.Config, string, error) {
	data, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the message names the path already
	}
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %q: %w", path, err)
	}
	return parseKubeconfig(path, data)
}

// parseKubeconfig is loadKubeconfig of the kubeconfig data, read from
// path. It is an error, naming path and what to add, if data is empty
// or not a kubeconfig, or has no current context, or its current
// context names a context, cluster or user that it does not define, or
// a cluster without a server.
func parseKubeconfig(path string, data []byte) (*rest.Config, string, error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %q: not a kubeconfig: %w", path, err)
	}
	if err := checkKubeconfig(cfg); err != nil {
		return nil, "", fmt.Errorf("kubeconfig %q: %w", path, err)
	}
	// As clientcmd.LoadFromFile does, so that relative file names in it
	// (certificate-authority: ca.pem) are relative to its directory.
	for _, c := range cfg.Clusters {
		c.LocationOfOrigin = path
	}
	for _, a := range cfg.AuthInfos {
		a.LocationOfOrigin = path
	}
	for _, c := range cfg.Contexts {
		c.LocationOfOrigin = path
	}
	if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
		return nil, "", fmt.Errorf("kubeconfig %q: %w", path, err)
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*cfg, cfg.CurrentContext, &clientcmd.ConfigOverrides{}, nil)
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %q: %w", path, err)
	}
	ns := cfg.Contexts[cfg.CurrentContext].Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return rc, ns, nil
}

// checkKubeconfig says what cfg lacks for kplay to use it: a current
// context that names a cluster with a server, and a user if it names
// one; and refuses insecure-skip-tls-verify on an https server.
func checkKubeconfig(cfg *clientcmdapi.Config) error {
	if len(cfg.Contexts) == 0 && len(cfg.Clusters) == 0 && len(cfg.AuthInfos) == 0 {
		return errors.New("empty (give a kubeconfig with a current-context, its cluster's server and its user, such as /etc/kubernetes/admin.conf)")
	}
	names := strings.Join(slices.Sorted(maps.Keys(cfg.Contexts)), ", ")
	switch {
	case len(cfg.Contexts) == 0:
		return errors.New("no contexts (add one that names a cluster and a user, and set current-context to it)")
	case cfg.CurrentContext == "":
		return fmt.Errorf("no current-context (set it to one of its contexts: %s)", names)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return fmt.Errorf("current-context %q is not among its contexts (set it to one of: %s)", cfg.CurrentContext, names)
	}
	cluster, ok := cfg.Clusters[ctx.Cluster]
	switch {
	case ctx.Cluster == "":
		return fmt.Errorf("context %q names no cluster (add cluster: to it)", cfg.CurrentContext)
	case !ok:
		return fmt.Errorf("context %q names cluster %q, which the file does not define (add it under clusters:)", cfg.CurrentContext, ctx.Cluster)
	case cluster.Server == "":
		return fmt.Errorf("cluster %q has no server (add one, such as https://10.0.0.10:6443)", ctx.Cluster)
	case cluster.InsecureSkipTLSVerify && strings.HasPrefix(strings.ToLower(cluster.Server), "https:"):
		// kplay never turns certificate checks off, and so never silently:
		// the token or client key would go to whoever answers.
		return fmt.Errorf("cluster %q sets insecure-skip-tls-verify, which kplay does not honour (remove it and give certificate-authority or certificate-authority-data, the CA of the server's certificate)", ctx.Cluster)
	}
	if _, ok := cfg.AuthInfos[ctx.AuthInfo]; ctx.AuthInfo != "" && !ok {
		return fmt.Errorf("context %q names user %q, which the file does not define (add it under users:)", cfg.CurrentContext, ctx.AuthInfo)
	}
	return nil
}
