# shellcheck shell=bash
# Sourced by .ci/demo and bench/run.sh: start_etcd DIR starts an etcd with
# the v2 keys API on a free-looking 127.0.0.1 port, its data and log in
# DIR, and waits until it answers. It sets ETCD_URL and ETCD_PID; the
# caller stops it (kill "$ETCD_PID").
start_etcd() {
	local dir=$1 port
	port=$(( 20000 + RANDOM % 20000 ))
	mkdir -p "$dir"
	etcd --name=kplay --data-dir="$dir/data" \
		--listen-client-urls="http://127.0.0.1:$port" --advertise-client-urls="http://127.0.0.1:$port" \
		--listen-peer-urls="http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((port + 1))" \
		--initial-cluster="kplay=http://127.0.0.1:$((port + 1))" --enable-v2=true >"$dir/etcd.log" 2>&1 &
	ETCD_PID=$!
	ETCD_URL="http://127.0.0.1:$port"
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "etcd did not start on 127.0.0.1:$port; its log:" >&2
	tail -20 "$dir/etcd.log" >&2
	return 1
}
