#!/usr/bin/env bash
# bench/run.sh — times kplay against CFEngine, Puppet and Ansible on this
# machine, on the same work, and prints the tables of docs/performance.md
# (issues 6 and 14). Run it as root from anywhere:
#
#   bash bench/run.sh                                  # all of it, medians of 10
#   TOOLS="kplay cfengine" SIZES=1000 RUNS=3 bash bench/run.sh   # a part
#
#   TOOLS   the tools, of kplay cfengine puppet ansible (default: all four);
#           the ratios are to kplay
#   SIZES   the generated workloads' numbers of files (default "1000 10000";
#           "" for none)
#   RUNS    timed rounds after one warm-up (default 10); tables give medians
#   KPLAY   a kplay binary to time instead of building ./cmd/kplay
#   STRACE  0 leaves out the trace of what each tool makes durable
#
# It installs what it needs when missing (Debian's etcd-server, curl,
# python3, time, strace, and cfengine3, puppet, ansible-core for those tools),
# builds kplay, starts an etcd on 127.0.0.1 and mounts a tmpfs in its work
# directory (under /var/tmp, on disk); it stops, unmounts and removes them
# at the end, failed or not. The work, each tool's own way:
#
#   - playbooks/master.star with --skip-tags api against the local etcd, on
#     a fresh copy of testdata/roots/coreos; bench/cfengine/master.cf,
#     bench/puppet/master.pp and bench/ansible/master.yml do the same (the
#     same files, contents, modes, owners and directories, the same etcd
#     key, the same multi-user.target.wants links);
#   - N generated files in 100 directories, for each N of SIZES: a kplay
#     playbook of N file steps, a CFEngine policy of N files promises and a
#     Puppet manifest of N file resources (not Ansible: hours at 10,000).
#
# Before timing a workload it runs each tool once on a fresh root (under
# strace, for master.star and the smallest N), and fails unless every tool
# left the same tree (paths, types, modes, owners, contents, link targets;
# kplay's /run and /var left out) and each tool's dry run finds nothing to
# change in any tool's tree. Then every row times the tools in turns: one
# warm-up round, then RUNS rounds of one run of each tool (see
# bench/measure.py for what is measured).
#
# How each tool runs: kplay check / kplay run. CFEngine: cf-agent -K
# (no locks) with the policy installed as promises.cf in the inputs of a
# work directory of its own (CFENGINE_TEST_OVERRIDE_WORKDIR, beside each
# root), so it is validated once and not on every run as with -f, and
# def.json there giving the root; -n for the dry run. Puppet: puppet apply
# --detailed-exitcodes with its own confdir and vardir (beside each root),
# its cached state (statedir, reports, client data) emptied before each
# run, since it slows as it grows; --noop for the dry run. Ansible:
# ansible-playbook -c local, --check --diff for the dry run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${RUNS:-10}
tools=${TOOLS:-kplay cfengine puppet ansible}
read -ra sizes <<<"${SIZES-1000 10000}"
trace=${STRACE:-1}

if [ "$(id -u)" -ne 0 ]; then
	echo "bench/run.sh: run it as root: the tools write root-owned files, as on a real master" >&2
	exit 1
fi
selected=()
for t in kplay cfengine puppet ansible; do
	[[ " $tools " != *" $t "* ]] || selected+=("$t")
done
for t in $tools; do
	case $t in
	kplay | cfengine | puppet | ansible) ;;
	*)
		echo "bench/run.sh: TOOLS: unknown tool \"$t\" (kplay, cfengine, puppet, ansible)" >&2
		exit 1
		;;
	esac
done
for n in "${sizes[@]}"; do
	if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -gt 99999 ]; then
		echo "bench/run.sh: SIZES: \"$n\" is not a number of files from 0 to 99999" >&2
		exit 1
	fi
done
has() { [[ " ${selected[*]} " == *" $1 "* ]]; }

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
[ "$trace" = 0 ] || command -v strace >/dev/null 2>&1 || need+=(strace)
! has cfengine || command -v cf-agent >/dev/null 2>&1 || need+=(cfengine3)
! has puppet || command -v puppet >/dev/null 2>&1 || need+=(puppet)
! has ansible || command -v ansible-playbook >/dev/null 2>&1 || need+=(ansible-core)
if [ ${#need[@]} -gt 0 ]; then
	echo "== installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Disk rows run in $work, on /var/tmp's file system, each fresh root a new
# ext4 file system there (bench/freshfs.sh); tmpfs rows in $mem.
work=$(mktemp -d /var/tmp/kplay-bench.XXXXXX)
disk=$work/disk
mem=$work/tmpfs
mkdir -p "$disk" "$mem" "$work/logs"
export BENCH_LOGS=$work/logs
# unmount_disk_roots PREFIX: unmounts the file systems of disk roots
# (bench/freshfs.sh) under PREFIX and detaches their loop devices.
unmount_disk_roots() {
	local m
	findmnt -rn -o TARGET | { grep -F "$1" || true; } | sort -r | while read -r m; do
		[ "$m" = "$mem" ] || bash "$repo/bench/freshfs.sh" -u "$m"
	done
}
cleanup() {
	local status=$?
	if [ -n "${ETCD_PID:-}" ]; then
		kill "$ETCD_PID" 2>/dev/null || true
		wait "$ETCD_PID" 2>/dev/null || true
	fi
	unmount_disk_roots "$work"
	if mountpoint -q "$mem"; then
		umount "$mem" || umount -l "$mem"
	fi
	rm -rf --one-file-system "$work"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount -t tmpfs -o size=4g,mode=0755 kplay-bench "$mem"
if [ "$(stat -f -c %T "$disk")" = tmpfs ]; then
	echo "bench/run.sh: warning: $work is on tmpfs, so the disk rows are not on disk" >&2
fi

# shellcheck source=.ci/etcd.sh
. .ci/etcd.sh
start_etcd "$work/etcd"

if has kplay; then
	if [ -n "${KPLAY:-}" ]; then
		kplay=$(realpath "$KPLAY")
	else
		echo "== building kplay" >&2
		CGO_ENABLED=0 go build -trimpath -o "$work/kplay" ./cmd/kplay
		kplay=$work/kplay
	fi
fi

# The machine and the versions, for the table's heading (sed -n 1p, not
# head -1, reads all: ansible-playbook fails on a closed pipe).
{
	echo "Measured on $(date -u +%Y-%m-%d) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with changes)'):"
	echo
	echo "- $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | sed -n 1p)), $(free -g | awk '/^Mem:/ {print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), Linux $(uname -r)"
	echo "- disk rows: a new 1 GiB ext4 file system for each fresh root, on a loop device (direct I/O) backed by a file on $(df -T "$disk" | awk 'NR == 2 {print $2 " on " $1}'); tmpfs rows: tmpfs"
	versions=()
	if has kplay; then
		versions+=("kplay $([ -n "${KPLAY:-}" ] && echo "$KPLAY" || echo "built with CGO_ENABLED=0 by $(go version | cut -d' ' -f3)")")
	fi
	has cfengine && versions+=("$(cf-agent --version | sed -n 1p)")
	has puppet && versions+=("Puppet $(puppet --version) (Facter $(facter --version 2>/dev/null | cut -d' ' -f1))")
	has ansible && versions+=("$(ansible-playbook --version | sed -n 1p)")
	versions+=("etcd $(etcd --version | sed -n 's/^etcd Version: //p') on 127.0.0.1")
	printf -- '- %s' "${versions[0]}"
	printf '; %s' "${versions[@]:1}"
	echo
} >"$work/heading.md"

tls=$repo/playbooks/examples/tls
coreos=$repo/testdata/roots/coreos
key_url=$ETCD_URL/v2/keys/coreos.com/network/config
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false

# gen_files N: writes the workload of N files in 100 directories, as a
# kplay playbook, a CFEngine policy and a Puppet manifest, each declaring
# each file in turn (a directory before its first file).
gen_files() {
	local n=$1
	awk -v n="$n" 'BEGIN {
		print "# generated by bench/run.sh: " n " file steps"
		for (i = 0; i < n; i++)
			printf "file(\"/srv/bench/d%03d/f%05d.conf\", content = \"setting = %d\\n\")\n", i % 100, i, i
	}' >"$work/files-$n.star"
	awk -v n="$n" 'BEGIN {
		print "# generated by bench/run.sh: " n " files promises; def.json gives root"
		print "body common control\n{\n  bundlesequence => { \"main\" };\n}\n"
		print "bundle agent main\n{"
		if (n > 0) {
			print "  files:"
			print "    \"$(def.root)/srv/.\" create => \"true\", perms => root_0755;"
			print "    \"$(def.root)/srv/bench/.\" create => \"true\", perms => root_0755;"
		}
		for (i = 0; i < n; i++) {
			if (i < 100)
				printf "    \"$(def.root)/srv/bench/d%03d/.\" create => \"true\", perms => root_0755;\n", i
			printf "    \"$(def.root)/srv/bench/d%03d/f%05d.conf\" create => \"true\", content => \"setting = %d$(const.n)\", perms => root_0644;\n", i % 100, i, i
		}
		print "}\n"
		print "body perms root_0644\n{\n  mode => \"0644\";\n  owners => { \"root\" };\n  groups => { \"root\" };\n  rxdirs => \"false\";\n}\n"
		print "body perms root_0755\n{\n  mode => \"0755\";\n  owners => { \"root\" };\n  groups => { \"root\" };\n  rxdirs => \"false\";\n}"
	}' >"$work/files-$n.cf"
	awk -v n="$n" 'BEGIN {
		print "# generated by bench/run.sh: " n " file resources; the fact bench_root gives the root"
		print "$root = $facts[\x27bench_root\x27]"
		print "File { owner => \x27root\x27, group => \x27root\x27, backup => false }"
		if (n > 0) {
			print "file { \"${root}/srv\": ensure => directory, mode => \x270755\x27 }"
			print "file { \"${root}/srv/bench\": ensure => directory, mode => \x270755\x27 }"
		}
		for (i = 0; i < n; i++) {
			if (i < 100)
				printf "file { \"${root}/srv/bench/d%03d\": ensure => directory, mode => \x270755\x27 }\n", i
			printf "file { \"${root}/srv/bench/d%03d/f%05d.conf\": ensure => file, content => \"setting = %d\\n\", mode => \x270644\x27 }\n", i % 100, i, i
		}
	}' >"$work/files-$n.pp"
}

# command_for TOOL ACTION WORKLOAD ROOT sets cmd to TOOL's command that
# does ACTION (check: its dry run; run) of WORKLOAD (master or files-N) to
# ROOT, and codes to its exit statuses of success. Leading NAME=value
# words are the command's environment.
command_for() {
	local tool=$1 action=$2 workload=$3 root=$4 state
	case $tool in
	kplay)
		if [ "$workload" = master ]; then
			cmd=("$kplay" "$action" playbooks/master.star --skip-tags api --var ADVERTISE_IP=10.0.0.10
				--var "ETCD_ENDPOINTS=$ETCD_URL" --var "TLS_DIR=$tls" --root "$root")
		else
			cmd=("$kplay" "$action" "$work/$workload.star" --root "$root")
		fi
		codes=0
		[ "$action" = run ] || codes=0,2
		;;
	cfengine)
		state=$root.cfengine
		if [ ! -d "$state" ]; then
			mkdir -p "$state/inputs"
			ln -s /usr/bin "$state/bin" # where cf-agent finds cf-promises, as in /var/lib/cfengine3
			if [ "$workload" = master ]; then
				cp bench/cfengine/master.cf "$state/inputs/promises.cf"
			else
				cp "$work/$workload.cf" "$state/inputs/promises.cf"
			fi
			python3 -c 'import json, sys; print(json.dumps({"vars": dict(zip(
				["root", "etcd_endpoints", "tls_dir", "bench"], sys.argv[1:]))}))' \
				"$root" "$ETCD_URL" "$tls" "$repo/bench" >"$state/inputs/def.json"
		fi
		cmd=("CFENGINE_TEST_OVERRIDE_WORKDIR=$state" cf-agent -K)
		[ "$action" = run ] || cmd+=(-n)
		codes=0
		;;
	puppet)
		state=$(dirname "$root")/puppet
		cmd=("FACTER_bench_root=$root" "FACTER_bench_etcd=$ETCD_URL" "FACTER_bench_tls_dir=$tls"
			"FACTER_bench_dir=$repo/bench" puppet apply --detailed-exitcodes --color=false
			--confdir "$state/conf" --codedir "$state/code" --vardir "$state/var"
			--logdir "$state/log" --rundir "$state/run")
		[ "$action" = run ] || cmd+=(--noop)
		if [ "$workload" = master ]; then
			cmd+=(bench/puppet/master.pp)
		else
			cmd+=("$work/$workload.pp")
		fi
		codes=0,2
		;;
	ansible)
		cmd=(ansible-playbook -i "localhost," -c local bench/ansible/master.yml
			-e "etcd_endpoints=$ETCD_URL" -e "tls_dir=$tls" -e "root=$root")
		[ "$action" = run ] || cmd+=(--check --diff)
		codes=0
		;;
	esac
}

# prepare_for TOOL FRESH WORKLOAD ROOT prints the shell command run before
# each of TOOL's runs: a fresh ROOT when FRESH is "fresh" (master.star's:
# a copy of the CoreOS-like root, and no flannel config in etcd, as on a
# new cluster; the generated workloads': an empty directory, since Puppet
# makes no parent of what it declares), and for Puppet its cached state
# emptied.
prepare_for() {
	local tool=$1 fresh=$2 workload=$3 root=$4 steps=()
	if [ "$fresh" = fresh ]; then
		if [[ $root == "$disk"/* ]]; then
			# A new file system (bench/freshfs.sh says why), its blocks
			# on the disk before the timed run starts.
			steps+=("bash $(printf %q "$repo/bench/freshfs.sh") $(printf %q "$root")")
		else
			steps+=("rm -rf $(printf %q "$root")" "mkdir $(printf %q "$root")")
		fi
		if [ "$workload" = master ]; then
			steps+=("cp -a $(printf %q "$coreos")/. $(printf %q "$root")/"
				"mkdir -p $(printf %q "$root/etc/systemd/system/multi-user.target.wants")"
				"curl -s -o /dev/null -X DELETE $(printf %q "$key_url")")
		fi
		[[ $root != "$disk"/* ]] || steps+=(sync)
	fi
	if [ "$tool" = puppet ]; then
		local v
		v=$(printf %q "$(dirname "$root")/puppet/var")
		steps+=("rm -rf $v/state $v/reports $v/client_data $v/client_yaml")
	fi
	[ ${#steps[@]} -gt 0 ] || steps=(true)
	local joined=${steps[0]} step
	for step in "${steps[@]:1}"; do
		joined+=" && $step"
	done
	echo "$joined"
}

# tools_for WORKLOAD: the selected tools that do WORKLOAD (Ansible only
# master.star).
tools_for() {
	local t
	for t in "${selected[@]}"; do
		[ "$t" != ansible ] || [ "$1" = master ] || continue
		echo "$t"
	done
}

results=$work/results.jsonl
durable=$work/durability.jsonl
: >"$results"
: >"$durable"

# timed NAME FS ACTION FRESH WORKLOAD: one row of the table, every tool's
# ACTION of WORKLOAD on its own root in FS, in turns.
timed() {
	local name=$1 fs=$2 action=$3 fresh=$4 workload=$5 args=() t root
	for t in $(tools_for "$workload"); do
		root=$fs/$workload-$t
		command_for "$t" "$action" "$workload" "$root"
		args+=("$t" "$(prepare_for "$t" "$fresh" "$workload" "$root")" "$codes" "${cmd[@]}" :::)
	done
	python3 bench/measure.py row "$runs" "$name" "${args[@]}" >>"$results"
}

# describe ROOT: every path of ROOT with its type, mode, owner, and a
# file's size or a link's target (not a directory's size: on tmpfs it
# counts the entries); kplay's own files (its lock in /run, its state in
# /var/lib/kplay, and those directories) are left out.
describe() {
	(cd "$1" && find . \( -path ./run -o -path ./var \) -prune -o \
		\( -type d -printf '%p %M %u:%g\n' \) -o -printf '%p %M %u:%g %s %l\n' | sort)
}

# converge WORKLOAD FS TRACE: each tool's run of WORKLOAD on a fresh root
# of its own in FS, once; under strace when TRACE is "trace", counting
# what it makes durable. Then fails unless all the trees are the same.
converge() {
	local workload=$1 fs=$2 how=$3 t root files
	for t in $(tools_for "$workload"); do
		root=$fs/$workload-$t
		command_for "$t" run "$workload" "$root"
		bash -c "$(prepare_for "$t" fresh "$workload" "$root")"
		echo "== $t: converging $workload in $root" >&2
		local status=0
		if [ "$how" = trace ]; then
			strace -f -y -qq -o "$work/strace.out" \
				-e trace=fsync,fdatasync,sync_file_range,syncfs,sync,rename,renameat,renameat2,openat \
				env "${cmd[@]}" >"$work/converge.out" 2>&1 || status=$?
		else
			env "${cmd[@]}" >"$work/converge.out" 2>&1 || status=$?
		fi
		if [[ ",$codes," != *",$status,"* ]]; then
			echo "bench/run.sh: $t run of $workload exited $status:" >&2
			{ grep -i -m 20 'error' "$work/converge.out" || true; } >&2
			tail -20 "$work/converge.out" >&2
			exit 1
		fi
		if [ "$how" = trace ]; then
			files=$(($(find "$root" \( -path "$root/run" -o -path "$root/var" \) -prune -o -type f -print | wc -l) -
				$(if [ "$workload" = master ]; then find "$coreos" -type f | wc -l; else echo 0; fi)))
			python3 bench/measure.py durability "$t" "$workload" "$root" "$files" \
				"$([ "$workload" = master ] && echo /etc/kubernetes/ssl/apiserver-key.pem || echo /srv/bench/d000/f00000.conf)" \
				"$work/strace.out" >>"$durable"
		fi
	done
	same_trees "$workload" "$fs"
}

# same_trees WORKLOAD FS: fails unless every tool left the same tree of
# WORKLOAD in FS.
same_trees() {
	local workload=$1 fs=$2 t first=""
	for t in $(tools_for "$workload"); do
		if [ -z "$first" ]; then
			first=$t
			continue
		fi
		if ! diff <(describe "$fs/$workload-$first") <(describe "$fs/$workload-$t") >"$work/tree.diff" ||
			! diff -r --no-dereference -x run -x var "$fs/$workload-$first" "$fs/$workload-$t" >>"$work/tree.diff"; then
			echo "bench/run.sh: $first and $t left different trees of $workload in $fs:" >&2
			cat "$work/tree.diff" >&2
			exit 1
		fi
	done
	[ -z "$first" ] || echo "== $workload: every tool left the same tree in $fs" >&2
}

# dry_runs_clean WORKLOAD FS: fails unless each tool's dry run finds
# nothing to change in each tool's converged tree of WORKLOAD, its own
# included.
dry_runs_clean() {
	local workload=$1 fs=$2 t u status clean
	for t in $(tools_for "$workload"); do
		for u in $(tools_for "$workload"); do
			command_for "$t" check "$workload" "$fs/$workload-$u"
			status=0
			env "${cmd[@]}" >"$work/dry.out" 2>&1 || status=$?
			case $t in
			kplay) clean=$([ "$status" = 0 ] && echo yes) ;;
			cfengine) clean=$([ "$status" = 0 ] && [ ! -s "$work/dry.out" ] && echo yes) ;;
			puppet) clean=$([ "$status" = 0 ] && ! grep -q '(noop)' "$work/dry.out" && echo yes) ;;
			ansible) clean=$([ "$status" = 0 ] && grep -q ' changed=0 .* failed=0 ' "$work/dry.out" && echo yes) ;;
			esac
			if [ -z "$clean" ]; then
				echo "bench/run.sh: $t's dry run (status $status) finds changes to make in the tree $u made:" >&2
				tail -40 "$work/dry.out" >&2
				exit 1
			fi
		done
	done
	echo "== $workload: no tool's dry run finds anything to change in any tool's tree" >&2
}

# comma N: N with thousands separated (10,000).
comma() { echo "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }

converge master "$disk" "$([ "$trace" = 0 ] || echo trace)"
dry_runs_clean master "$disk"
timed "check master.star, fresh root" "$disk" check fresh master
timed "run master.star, fresh root" "$disk" run fresh master
timed "check master.star, converged root" "$disk" check none master

smallest=$(printf '%s\n' "${sizes[@]}" | sort -n | head -1)
for n in "${sizes[@]}"; do
	gen_files "$n"
	converge "files-$n" "$disk" "$([ "$trace" = 0 ] || [ "$n" != "$smallest" ] || echo trace)"
	dry_runs_clean "files-$n" "$disk"
	timed "check $(comma "$n") files, converged (disk)" "$disk" check none "files-$n"
	timed "run $(comma "$n") files, fresh root (disk)" "$disk" run fresh "files-$n"
	timed "run $(comma "$n") files, fresh root (tmpfs)" "$mem" run fresh "files-$n"
	same_trees "files-$n" "$mem"
	unmount_disk_roots "$disk/files-$n-"
	rm -rf --one-file-system "$disk/files-$n-"* "$mem/files-$n-"*
done

cat "$work/heading.md"
python3 bench/measure.py table "$runs" "$results" "$durable"
