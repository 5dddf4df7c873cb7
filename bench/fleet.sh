#!/usr/bin/env bash
# bench/fleet.sh — times fleet runs of playbooks/master.star (--skip-tags
# api) on 1, 2 and 3 hosts, each a real sshd in its own network namespace
# (../shared/recipes/fleet.md, recipe A), and splits each host's time into
# SSH setup (TCP, handshake, login), transfer (the kplay binary and the
# bundle) and the remote run. Issue 16's closing figures. Run it as root:
#
#   bash bench/fleet.sh              # medians of 5
#   RUNS=3 HOSTS="1 3" bash bench/fleet.sh
#
# Each host converges its own copy of testdata/roots/coreos (root: in the
# inventory), against an etcd in the controller's namespace. A round is a
# run on fresh roots, then a check (nothing to change). The first round
# of each size starts with the binary not in the hosts' cache (a first
# contact: it is sent); its figures are the "first" lines, the medians of
# the other rounds (the hosts have it) the "cached" lines. It needs
# openssh-server, etcd-server, jq and iproute2; it removes its namespaces,
# servers and files at the end, failed or not. Every address is inside the
# namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
HOSTS=${HOSTS:-"1 2 3"}
[ "$(id -u)" -eq 0 ] || { echo "bench/fleet.sh: run as root (network namespaces)" >&2; exit 1; }
for tool in /usr/sbin/sshd etcd jq ip ssh-keygen; do
	command -v "$tool" >/dev/null || { echo "bench/fleet.sh: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d /tmp/kplay-fleet-bench.XXXXXX)
ctl=kfb$$c
max=3
cleanup() {
	for n in $(seq 1 $max); do
		[ -f "$work/h$n/sshd.pid" ] && kill "$(cat "$work/h$n/sshd.pid")" 2>/dev/null || true
		ip netns del "kfb$$h$n" 2>/dev/null || true
	done
	[ -n "${etcd_pid:-}" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null || true
	ip netns del "$ctl" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/kplay" ./cmd/kplay
mkdir -p /run/sshd
ip netns add "$ctl"
ip -n "$ctl" link add br0 type bridge
ip -n "$ctl" addr add 10.213.77.254/24 dev br0
ip -n "$ctl" link set br0 up
ip -n "$ctl" link set lo up
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
: >"$work/known_hosts"
for n in $(seq 1 $max); do
	ns=kfb$$h$n d=$work/h$n
	mkdir -p "$d"
	ip netns add "$ns"
	ip link add "vh$n" netns "$ns" type veth peer name "ph$n" netns "$ctl"
	ip -n "$ns" addr add "10.213.77.$n/24" dev "vh$n"
	ip -n "$ns" link set "vh$n" up
	ip -n "$ns" link set lo up
	ip -n "$ctl" link set "ph$n" master br0
	ip -n "$ctl" link set "ph$n" up
	ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey"
	echo "10.213.77.$n $(cut -d' ' -f1,2 "$d/hostkey.pub")" >>"$work/known_hosts"
	cp "$work/id_ed25519.pub" "$d/authorized_keys"
	cat >"$d/sshd_config" <<-EOF
		ListenAddress 10.213.77.$n:22
		HostKey $d/hostkey
		PidFile $d/sshd.pid
		AuthorizedKeysFile $d/authorized_keys
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		UsePAM no
		StrictModes no
	EOF
	ip netns exec "$ns" /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
done
ip netns exec "$ctl" etcd --name fleetbench --data-dir "$work/etcd" --enable-v2=true \
	--listen-client-urls http://10.213.77.254:2379 --advertise-client-urls http://10.213.77.254:2379 \
	--listen-peer-urls http://127.0.0.1:0 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster fleetbench=http://127.0.0.1:2380 >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do
	ip netns exec "$ctl" bash -c 'exec 3<>/dev/tcp/10.213.77.254/2379' 2>/dev/null && break
	sleep 0.1
done

inventory() { # N hosts
	echo "ssh: {identity: $work/id_ed25519, known_hosts: $work/known_hosts}"
	echo "vars: {ETCD_ENDPOINTS: 'http://10.213.77.254:2379', TLS_DIR: playbooks/examples/tls}"
	echo "hosts:"
	for n in $(seq 1 "$1"); do
		echo "  h$n: {address: 10.213.77.$n, root: $work/roots/h$n, vars: {ADVERTISE_IP: 10.213.77.$n}}"
	done
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fleet() { # MODE N → the JSON document in $work/out.json, wall ms on stdout
	local t0 t1
	t0=$(date +%s%N)
	ip netns exec "$ctl" "$work/kplay" "$1" playbooks/master.star --inventory "$work/inv$2.yaml" \
		--skip-tags api --output json >"$work/out.json" 2>"$work/err.log" || [ $? -eq 2 ]
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

sum=$(sha256sum "$work/kplay" | cut -d' ' -f1)
cache=$HOME/.cache/kplay/bin/$sum
[ -e "$cache" ] && keep_cache=1 || keep_cache=
trap '[ -n "$keep_cache" ] || rm -rf "$cache"; cleanup' EXIT
printf '%-6s %-6s %-5s %9s %9s %9s %9s\n' hosts binary mode wall_ms dial_ms xfer_ms remote_ms
for n in $HOSTS; do
	inventory "$n" >"$work/inv$n.yaml"
	: >"$work/run.txt"
	: >"$work/check.txt"
	rm -rf "$cache" # the hosts are this machine: its cache is theirs
	for round in $(seq 0 "$RUNS"); do
		rm -rf "$work/roots"
		for h in $(seq 1 "$n"); do
			mkdir -p "$work/roots"
			cp -a testdata/roots/coreos "$work/roots/h$h"
			mkdir -p "$work/roots/h$h/etc/systemd/system/multi-user.target.wants"
		done
		for mode in run check; do
			wall=$(fleet "$mode" "$n")
			if [ "$(jq '[.hosts[] | select(.outcome != "ok" and .outcome != "changes")] | length' "$work/out.json")" != 0 ]; then
				echo "bench/fleet.sh: $mode on $n hosts failed:" >&2
				jq -r '.hosts[] | "\(.name): \(.outcome) \(.error // "")"' "$work/out.json" >&2
				cat "$work/err.log" >&2
				exit 1
			fi
			# The hosts' mean split for this round.
			split=$(jq -r '[.hosts[].timing] | "\((map(.dial_ms) | add) / length) \((map(.transfer_ms) | add) / length) \((map(.remote_ms) | add) / length)"' "$work/out.json")
			if [ "$round" -eq 0 ] && [ "$mode" = run ]; then
				# shellcheck disable=SC2086
				printf '%-6s %-6s %-5s %9s %9.0f %9.0f %9.0f\n' "$n" "$(jq -r 'if any(.hosts[]; .binary_sent) then "first" else "cached" end' "$work/out.json")" "$mode" $wall $split
			else
				echo "$wall $split" >>"$work/$mode.txt"
			fi
		done
	done
	for mode in run check; do
		f=$work/$mode.txt
		printf '%-6s %-6s %-5s %9s %9.0f %9.0f %9.0f\n' "$n" cached "$mode" \
			"$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f2 "$f" | median)" \
			"$(cut -d' ' -f3 "$f" | median)" "$(cut -d' ' -f4 "$f" | median)"
	done
done
