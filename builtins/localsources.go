package builtins

import (
	"github.com/kplay-dev/kplay/engine"
	"github.com/kplay-dev/kplay/host"
)

// The steps that read files on the machine running kplay when they run:
// a file's src, and the TLS files and kubeconfig of the steps that talk
// to servers. A fleet run ships them to each host (engine.LocalSourcer),
// where host.Real reads the shipped copies.
var (
	_ engine.LocalSourcer = (*fileStep)(nil)
	_ engine.LocalSourcer = (*waitHTTPStep)(nil)
	_ engine.LocalSourcer = (*httpPostStep)(nil)
	_ engine.LocalSourcer = (*etcdPutStep)(nil)
	_ engine.LocalSourcer = (*kubeCreateStep)(nil)
)

func (s *waitHTTPStep) LocalSources() []string { return tlsSources(s.tls) }
func (s *httpPostStep) LocalSources() []string { return tlsSources(s.tls) }
func (s *etcdPutStep) LocalSources() []string  { return tlsSources(s.cfg.TLS) }

func (s *kubeCreateStep) LocalSources() []string {
	files := tlsSources(s.cfg.TLS)
	if s.cfg.Kubeconfig != "" {
		files = append(files, s.cfg.Kubeconfig)
	}
	return files
}

// tlsSources are the files of f that are given.
func tlsSources(f host.TLSFiles) []string {
	var files []string
	for _, name := range []string{f.CAFile, f.CertFile, f.KeyFile} {
		if name != "" {
			files = append(files, name)
		}
	}
	return files
}
