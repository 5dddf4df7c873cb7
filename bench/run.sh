#!/usr/bin/env bash
# bench/run.sh — times kplay against Ansible on this machine and prints
# one table, ratios first (issue 6). Run it as root from anywhere:
#
#   bash bench/run.sh              # 5 runs of each (RUNS=n for more)
#
# It installs what it needs when missing (Debian's ansible-core, etcd-server,
# hyperfine, time and curl), builds kplay, and starts an etcd on 127.0.0.1 that
# it stops at the end. Then, with medians of RUNS runs after one warm-up:
#
#   - playbooks/master.star: `kplay check` on a fresh CoreOS-like root, `kplay
#     run` on a fresh root, and `kplay check` on the converged root, all
#     offline (--skip-tags api) against the local etcd;
#   - bench/ansible/master.yml, the same files, modes, owners, etcd key and
#     [Install] links as an Ansible playbook: `ansible-playbook --check
#     --diff` and a real run, the same three ways. The script checks that
#     both tools leave identical trees and that kplay finds nothing to
#     change in the tree Ansible made, so the comparison is like for like;
#   - generated playbooks of 1,000 and 10,000 file steps: check and run.
#
# Peak RSS is the largest process's maximum resident set (GNU time's %M,
# median of the runs). docs/performance.md holds a table this printed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${RUNS:-5}

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: run it as root: both tools write root-owned files, as on a real master" >&2
	exit 1
fi
need=()
command -v ansible-playbook >/dev/null 2>&1 || need+=(ansible-core)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
	echo "== installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/kplay-bench.XXXXXX)
# shellcheck source=.ci/etcd.sh
. .ci/etcd.sh
trap 'status=$?; kill $ETCD_PID 2>/dev/null; wait $ETCD_PID 2>/dev/null || true; rm -rf "$work"; exit $status' EXIT
start_etcd "$work/etcd"

echo "== building kplay"
CGO_ENABLED=0 go build -trimpath -o "$work/kplay" ./cmd/kplay
kplay=$work/kplay

results=$work/results.tsv
: >"$results"

# measure NAME PREPARE COMMAND...: times COMMAND (RUNS runs after one
# warm-up, PREPARE run by a shell before each) and its peak RSS (RUNS
# more runs under GNU time), and records the medians under NAME.
measure() {
	local name=$1 prepare=$2
	shift 2
	echo "== $name: $*"
	hyperfine --runs "$runs" --warmup 1 --ignore-failure --style none -N \
		--prepare "$prepare" --export-json "$work/h.json" -- "$(printf '%q ' "$@")" >/dev/null
	local rss=()
	for _ in $(seq "$runs"); do
		bash -c "$prepare"
		/usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>&1 || true
		rss+=("$(tail -1 "$work/rss")")
	done
	python3 - "$work/h.json" "$name" "${rss[@]}" >>"$results" <<'PY'
import json, statistics, sys
times = json.load(open(sys.argv[1]))["results"][0]["times"]
rss = [int(x) for x in sys.argv[3:]]
print("%s\t%.6f\t%d" % (sys.argv[2], statistics.median(times), statistics.median(rss)))
PY
	tail -1 "$results" | awk -F'\t' '{printf "   median %.1f ms, peak RSS %.1f MB\n", $2 * 1000, $3 / 1024}'
}

# The master playbook, both tools, offline against the local etcd.
tls=$repo/playbooks/examples/tls
kargs=(playbooks/master.star --skip-tags api --var ADVERTISE_IP=10.0.0.10
	--var "ETCD_ENDPOINTS=$ETCD_URL" --var "TLS_DIR=$tls")
aargs=(-i localhost, -c local bench/ansible/master.yml
	-e "etcd_endpoints=$ETCD_URL" -e "tls_dir=$tls")
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false

kroot=$work/kplay-root
aroot=$work/ansible-root
# fresh DIR: writes a script that makes DIR a new copy of the CoreOS-like
# root and removes the flannel config from etcd, as on a new cluster, and
# prints the command that runs it (hyperfine -N runs no shell).
fresh() {
	local script=$work/fresh-$(basename "$1").sh
	cat >"$script" <<-SH
		rm -rf "$1" && cp -a "$repo/testdata/roots/coreos" "$1"
		mkdir -p "$1/etc/systemd/system/multi-user.target.wants"
		curl -s -o /dev/null -X DELETE "$ETCD_URL/v2/keys/coreos.com/network/config"
	SH
	echo "bash $script"
}
measure "kplay check, fresh root" "$(fresh "$kroot")" "$kplay" check "${kargs[@]}" --root "$kroot"
measure "kplay run, fresh root" "$(fresh "$kroot")" "$kplay" run "${kargs[@]}" --root "$kroot"
measure "kplay check, converged root" true "$kplay" check "${kargs[@]}" --root "$kroot"
measure "ansible --check --diff, fresh root" "$(fresh "$aroot")" ansible-playbook "${aargs[@]}" -e "root=$aroot" --check --diff
measure "ansible run, fresh root" "$(fresh "$aroot")" ansible-playbook "${aargs[@]}" -e "root=$aroot"
measure "ansible --check --diff, converged root" true ansible-playbook "${aargs[@]}" -e "root=$aroot" --check --diff

# Like for like: the same tree from both, and nothing for kplay to change
# in Ansible's. kplay's own files (its lock in /run, its journal in
# /var/lib/kplay, and those directories) are left out.
describe() {
	(cd "$1" && find . \( -path ./run -o -path ./var \) -prune -o -printf '%p %M %u:%g %s %l\n' | sort)
}
if ! diff <(describe "$kroot") <(describe "$aroot") >"$work/tree.diff" ||
	! diff -r --no-dereference -x run -x var "$kroot" "$aroot" >>"$work/tree.diff"; then
	echo "bench/run.sh: kplay and Ansible left different trees:" >&2
	cat "$work/tree.diff" >&2
	exit 1
fi
if ! "$kplay" check "${kargs[@]}" --root "$aroot" >"$work/cross.txt" 2>&1; then
	echo "bench/run.sh: kplay check finds changes in the tree Ansible made:" >&2
	cat "$work/cross.txt" >&2
	exit 1
fi
echo "== both tools made the same tree; kplay check on Ansible's finds nothing to change"

# Generated playbooks of N file steps in 100 directories. N=0 (no step)
# measures what every run pays whatever its size: start-up, evaluation,
# output; the per-step figures leave it out.
for n in 0 1000 10000; do
	pb=$work/files-$n.star
	awk -v n="$n" 'BEGIN {
		print "# generated by bench/run.sh: " n " file steps"
		for (i = 0; i < n; i++)
			printf "file(\"/srv/bench/d%03d/f%05d.conf\", content = \"setting = %d\\n\")\n", i % 100, i, i
	}' >"$pb"
	froot=$work/files-root
	echo "rm -rf '$froot'" >"$work/rm-files.sh"
	measure "kplay check, $n files, fresh root" "bash $work/rm-files.sh" \
		"$kplay" check "$pb" --root "$froot"
	measure "kplay run, $n files, fresh root" "bash $work/rm-files.sh" \
		"$kplay" run "$pb" --root "$froot"
	measure "kplay check, $n files, converged" "true" \
		"$kplay" check "$pb" --root "$froot"
done

# The table: ratios first, then every median.
python3 - "$results" "$runs" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, t, rss = line.rstrip("\n").split("\t")
    rows[name] = (float(t), int(rss))
def ms(name):
    return rows[name][0] * 1000
print()
print("| comparison (medians of %s runs) | kplay | Ansible | Ansible / kplay |" % sys.argv[2])
print("|---|---:|---:|---:|")
for what in ["check --diff, fresh root", "run, fresh root", "check --diff, converged root"]:
    k = "kplay " + what.replace(" --diff", "")
    a = "ansible " + what.replace("check --diff", "--check --diff")
    print("| master playbook: %s | %.1f ms | %.0f ms | **%.0f×** |" % (what, ms(k), ms(a), ms(a) / ms(k)))
print()
print("| kplay, N file steps, less the empty playbook | N = 1,000 | N = 10,000 | ratio (10 is linear) |")
print("|---|---:|---:|---:|")
for what in ["check, %s files, fresh root", "run, %s files, fresh root", "check, %s files, converged"]:
    k0, k1, k10 = ("kplay " + what % n for n in (0, 1000, 10000))
    print("| %s | %.0f ms | %.0f ms | %.1f |" % (
        what % "N", ms(k1) - ms(k0), ms(k10) - ms(k0), (ms(k10) - ms(k0)) / (ms(k1) - ms(k0))))
print()
print("| run | median | per step (less the empty playbook) | peak RSS |")
print("|---|---:|---:|---:|")
for name, (t, rss) in rows.items():
    per = ""
    for n in (1000, 10000):
        if " %d files" % n in name:
            empty = rows[name.replace(" %d files" % n, " 0 files")][0]
            per = "%.1f µs" % ((t - empty) * 1e6 / n)
    print("| %s | %.1f ms | %s | %.1f MB |" % (name, t * 1000, per, rss / 1024))
PY
