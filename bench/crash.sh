#!/bin/sh
# bench/crash.sh — the full crash-safety run of issue 6 (item 1): kplay run
# of playbooks/master.star killed with SIGKILL KILLS times (default 200),
# each kill checked, then converged. Needs root and etcd (etcd-server 3.4).
#
#   bench/crash.sh [KILLS [SEED]]     SEED 0 or none: from the clock
#
# The seed is printed at the start; rerun with it to replay the same var
# sets, chains and delays.
set -eu
cd "$(dirname "$0")/.."
kills=${1:-200}
seed=${2:-0}
exec go test ./playbooks/ -run '^TestCrashSafety$' -count=1 -v -timeout 60m \
	-crash.kills="$kills" -crash.seed="$seed"
