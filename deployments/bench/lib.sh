# shellcheck shell=bash
# lib.sh — sourced by the benchmark scripts: free ports, the real local stack on private ports, and wrk runs.

# start_stack NAME — runs make run's run.sh with its own data directory, ports and libvirt pools (the
# host's libvirtd; started by run.sh when absent) and waits until it is up. Sets DIR, PG_PORT,
# GATEWAY, VM_ADDR, MEDIA_ADDR, QUOTA_ADDR, TOKEN (the admin's) and the EXIT trap that stops it all again.
# BENCH_LOG_DIR: keep the services' logs (with access logs, LOG_LEVEL=info) there.
start_stack() {
	bash deployments/local/ensure-deps.sh # libvirtd and its configuration, as make run has them
	DIR=$(mktemp -d "/tmp/limen-bench-$1.XXXXXX")
	chmod 755 "$DIR" # postgres (as its own user) must reach the data directory
	POOLS=("limen-bench-vms-$$" "limen-bench-isos-$$") # removed at the end: the host stays as it was
	STACK=
	trap stop_stack EXIT
	PG_PORT=$(free_port) VM_ADDR=127.0.0.1:$(free_port) MEDIA_ADDR=127.0.0.1:$(free_port) GATEWAY=127.0.0.1:$(free_port)
	# Never a default port: a `make run` on this host holds those.
	QUOTA_ADDR=127.0.0.1:$(free_port)
	: >"$DIR/stack.log"
	local log_level=warn
	[[ -n "${BENCH_LOG_DIR:-}" ]] && log_level=info
	LIMEN_DATA_DIR=$DIR/data LIMEN_PG_PORT=$PG_PORT LIMEN_KAFKA_ADDR=127.0.0.1:$(free_port) \
		LIMEN_AUTH_ADDR=127.0.0.1:$(free_port) LIMEN_VM_ADDR=$VM_ADDR LIMEN_MEDIA_ADDR=$MEDIA_ADDR LIMEN_QUOTA_ADDR=$QUOTA_ADDR \
		LIMEN_GATEWAY_ADDR=$GATEWAY LIMEN_LOG_TEE=0 LOG_LEVEL=$log_level LIMEN_RESYNC_INTERVAL=1h \
		LIMEN_STORAGE_POOL=${POOLS[0]} LIMEN_ISO_POOL=${POOLS[1]} LIMEN_VM_STOP_TIMEOUT=2s \
		bash deployments/local/run.sh >"$DIR/stack.log" 2>&1 &
	STACK=$!
	for _ in $(seq 600); do
		grep -q "LIMEN is up" "$DIR/stack.log" && break
		kill -0 "$STACK" 2>/dev/null || {
			cat "$DIR/stack.log" >&2
			exit 1
		}
		sleep 0.5
	done
	grep -q "starting media-service on" "$DIR/stack.log" || {
		echo "vm-service and media-service did not start (no libvirt?)" >&2
		exit 1
	}
	# shellcheck disable=SC2034 # read by the scripts that source this file
	TOKEN=$(curl -fs -H 'Content-Type: application/json' \
		-d "{\"username\":\"admin\",\"password\":\"$(cat "$DIR/data/admin-password")\"}" \
		"http://$GATEWAY/api/auth/login" | json_field token)
}

stop_stack() {
	if [[ -n "$STACK" ]]; then
		# The pools go first: a libvirtd that run.sh started stops with the stack, and the pools'
		# definitions would stay behind (autostarted).
		for pool in "${POOLS[@]}"; do
			virsh -q -c qemu:///system pool-destroy "$pool" >/dev/null 2>&1 || true
			virsh -q -c qemu:///system pool-undefine "$pool" >/dev/null 2>&1 || true
		done
		kill -TERM "$STACK" 2>/dev/null || true
		wait "$STACK" 2>/dev/null || true
	fi
	if [[ -n "${BENCH_LOG_DIR:-}" ]]; then
		mkdir -p "$BENCH_LOG_DIR" && cp "$DIR"/data/logs/*.log "$BENCH_LOG_DIR/"
	fi
	rm -rf "$DIR"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }

# bench NAME URL [wrk args...] prints "NAME req/s p50 p99" after a 2 s warm-up. Needs THREADS,
# CONNECTIONS, DURATION and DIR. With CPU_PIDS set it adds the CPU time (user + system) those processes
# spent per request during the measured run, in µs: on a box whose cores the load generator shares,
# it is steadier than req/s.
bench() {
	local name=$1 url=$2
	shift 2
	wrk -t"$(( CONNECTIONS < THREADS ? CONNECTIONS : THREADS ))" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
	local ticks_before
	ticks_before=$(cpu_ticks)
	wrk -t"$(( CONNECTIONS < THREADS ? CONNECTIONS : THREADS ))" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$DIR/wrk-$name.out"
	awk -v name="$name" -v ticks="$(( $(cpu_ticks) - ticks_before ))" -v hz="$(getconf CLK_TCK)" -v cpu="${CPU_PIDS:+1}" '
		/requests in/ { requests = $1 }
		/Requests\/sec/ { rps = $2 }
		$1 == "50%" { p50 = $2 }
		$1 == "99%" { p99 = $2 }
		/Non-2xx/ { bad = $NF }
		END {
			printf "%-10s %12s %10s %10s", name, rps, p50, p99
			if (cpu) printf " %12.1f", ticks / hz * 1e6 / requests
			printf "%s\n", (bad ? " non-2xx: " bad : "")
		}' "$DIR/wrk-$name.out"
}

# cpu_ticks sums the user and system clock ticks of CPU_PIDS (0 without them). The fields are counted
# after the command name, which may hold spaces.
cpu_ticks() {
	local pid total=0
	for pid in ${CPU_PIDS:-}; do
		total=$(( total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }') ))
	done
	echo "$total"
}
