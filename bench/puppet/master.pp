# bench/puppet/master.pp: what `kplay run playbooks/master.star
# --skip-tags api` does to an offline root, as a Puppet 7 manifest, for
# bench/run.sh to time against kplay. The same files with the same
# contents, modes and owners, the same directories, the same etcd key and
# the same [Install] symlinks; bench/run.sh checks that every tool leaves
# the same tree. The templates and drop-ins are bench/ansible's: each
# template's {{ name }} becomes EPP's <%= $name %>. Restarts are left out:
# on an offline root kplay skips them too.
#
#   FACTER_bench_root=/tmp/r FACTER_bench_etcd=http://127.0.0.1:2379 \
#   FACTER_bench_tls_dir=$PWD/playbooks/examples/tls FACTER_bench_dir=$PWD/bench \
#     puppet apply --detailed-exitcodes bench/puppet/master.pp   # --noop: a dry run
$root = $facts['bench_root']
$tls_dir = $facts['bench_tls_dir']
$bench = $facts['bench_dir']
$etcd = $facts['bench_etcd']
$etcd_key = '/coreos.com/network/config'
# Written as kplay writes it: keys sorted, no spaces.
$flannel_config = '{"Backend":{"Type":"vxlan"},"Network":"10.2.0.0/16"}'
$template_vars = {
  'advertise_ip'     => '10.0.0.10',
  'etcd_endpoints'   => $etcd,
  'k8s_ver'          => 'v1.4.0_coreos.0',
  'service_ip_range' => '10.3.0.0/24',
  'dns_service_ip'   => '10.3.0.10',
  'k8s_api'          => 'http://127.0.0.1:8080',
}

# require_file(): stop before any change when the wrapper is missing.
unless find_file("${root}/usr/lib/coreos/kubelet-wrapper") {
  fail("${root}/usr/lib/coreos/kubelet-wrapper is missing")
}

# Puppet applies the resources in the order of this file (its ordering
# setting is manifest), as kplay runs its steps. kplay keeps no backup of
# what it replaces.
File {
  owner  => 'root',
  group  => 'root',
  backup => false,
}

file { [
    "${root}/etc/kubernetes",
    "${root}/etc/kubernetes/ssl",
    "${root}/etc/flannel",
    "${root}/etc/systemd/system/flanneld.service.d",
    "${root}/etc/systemd/system/docker.service.d",
    "${root}/etc/kubernetes/manifests",
    "${root}/etc/kubernetes/cni",
    "${root}/etc/kubernetes/cni/net.d",
  ]:
  ensure => directory,
  mode   => '0755',
}

file { "${root}/etc/kubernetes/ssl/ca.pem":
  source => "${tls_dir}/ca.pem",
  mode   => '0644',
}
file { "${root}/etc/kubernetes/ssl/apiserver.pem":
  source => "${tls_dir}/apiserver.pem",
  mode   => '0644',
}
file { "${root}/etc/kubernetes/ssl/apiserver-key.pem":
  source    => "${tls_dir}/apiserver-key.pem",
  mode      => '0600',
  show_diff => false,
}

file { "${root}/etc/systemd/system/flanneld.service.d/40-ExecStartPre-symlink.conf":
  source => "${bench}/ansible/files/40-ExecStartPre-symlink.conf",
  mode   => '0644',
}
file { "${root}/etc/systemd/system/docker.service.d/40-flannel.conf":
  source => "${bench}/ansible/files/40-flannel.conf",
  mode   => '0644',
}

$templated = {
  'etc/flannel/options.env'                            => 'options.env',
  'etc/systemd/system/kubelet.service'                 => 'kubelet.service',
  'etc/kubernetes/manifests/kube-apiserver.yaml'       => 'kube-apiserver.yaml',
  'etc/kubernetes/manifests/kube-proxy.yaml'           => 'kube-proxy.yaml',
  'etc/kubernetes/manifests/kube-controller-manager.yaml' => 'kube-controller-manager.yaml',
  'etc/kubernetes/manifests/kube-scheduler.yaml'       => 'kube-scheduler.yaml',
  'etc/systemd/system/calico-node.service'             => 'calico-node.service',
  'etc/kubernetes/manifests/policy-controller.yaml'    => 'policy-controller.yaml',
  'etc/kubernetes/cni/net.d/10-calico.conf'            => '10-calico.conf',
}
$templated.each |$path, $name| {
  $jinja = file("${bench}/ansible/templates/${name}.j2")
  file { "${root}/${path}":
    content => inline_epp(regsubst($jinja, '\{\{ (\w+) \}\}', '<%= $\1 %>', 'G'), $template_vars),
    mode    => '0644',
  }
}

# A quorum read, as kplay and the Ansible playbook do; a PUT when the value
# differs. Puppet has no HTTP resource: curl does both, and the read runs
# in a --noop run too.
$etcd_url = "${etcd}/v2/keys${etcd_key}"
exec { 'etcd_put /coreos.com/network/config':
  command => ['/usr/bin/curl', '-sSf', '-o', '/dev/null', '-X', 'PUT', $etcd_url,
    '--data-urlencode', "value=${flannel_config}"],
  # One command as an argv: a list of strings would be a list of commands.
  unless  => [['/bin/sh', '-c', 'curl -s "$1" | grep -qF "$2"', 'sh', "${etcd_url}?quorum=true",
    "\"value\":\"${regsubst($flannel_config, '"', '\\\\"', 'G')}\""]],
  path    => ['/usr/bin', '/bin'],
}

$wants = "${root}/etc/systemd/system/multi-user.target.wants"
file { "${wants}/flanneld.service":
  ensure => link,
  target => '/usr/lib/systemd/system/flanneld.service',
}
file { "${wants}/kubelet.service":
  ensure => link,
  target => '/etc/systemd/system/kubelet.service',
}
file { "${wants}/calico-node.service":
  ensure => link,
  target => '/etc/systemd/system/calico-node.service',
}
