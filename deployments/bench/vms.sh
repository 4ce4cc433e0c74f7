#!/usr/bin/env bash
# VM list benchmark: GET /api/vms for a user with BENCH_VMS (1,000) VMs in the database, through the
# gateway (JWT check + proxy) and at vm-service directly, on the real local stack (make run's run.sh
# with its own data directory and ports). Prints req/s, p50 and p99 for each.
#
# The list is answered from Postgres alone: app.ListVMs has no hypervisor port, so the path cannot
# call libvirt (statuses are kept current by lifecycle events and the resync instead).
#
#   BENCH_VMS (1000)  BENCH_DURATION (10s)  BENCH_CONNECTIONS (16)  BENCH_THREADS (2)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VMS=${BENCH_VMS:-1000}
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}

bash deployments/local/ensure-deps.sh # libvirtd and its configuration, as make run has them
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

DIR=$(mktemp -d /tmp/limen-bench-vms.XXXXXX)
chmod 755 "$DIR" # postgres (as its own user) must reach the data directory
STACK=
POOL=limen-bench-$$ # its own storage pool, removed at the end, so the host's stays as it was
cleanup() {
	if [[ -n "$STACK" ]]; then
		virsh -q -c qemu:///system pool-destroy "$POOL" >/dev/null 2>&1 || true
		virsh -q -c qemu:///system pool-undefine "$POOL" >/dev/null 2>&1 || true
		kill -TERM "$STACK" 2>/dev/null || true
		wait "$STACK" 2>/dev/null || true
	fi
	rm -rf "$DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port) VM=127.0.0.1:$(free_port) GATEWAY=127.0.0.1:$(free_port)
: >"$DIR/stack.log"
LIMEN_DATA_DIR=$DIR/data LIMEN_PG_PORT=$PG_PORT LIMEN_KAFKA_ADDR=127.0.0.1:$(free_port) \
	LIMEN_AUTH_ADDR=127.0.0.1:$(free_port) LIMEN_VM_ADDR=$VM LIMEN_GATEWAY_ADDR=$GATEWAY \
	LIMEN_LOG_TEE=0 LOG_LEVEL=warn LIMEN_RESYNC_INTERVAL=1h LIMEN_STORAGE_POOL=$POOL \
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
grep -q "vm-service on" "$DIR/stack.log" || {
	echo "vm-service did not start (no libvirt?)" >&2
	exit 1
}

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
TOKEN=$(curl -fs -H 'Content-Type: application/json' \
	-d "{\"username\":\"admin\",\"password\":\"$(cat "$DIR/data/admin-password")\"}" \
	"http://$GATEWAY/api/auth/login" | json_field token)
OWNER=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/auth/me" | json_field id)

PSQL=$(command -v psql || printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)
"$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d limen -v ON_ERROR_STOP=1 -c "
	INSERT INTO vm.vms (uuid, owner_id, name, cpu, memory_mib, os_type, disk_gb, status, host, version, created_at, updated_at)
	SELECT gen_random_uuid(), $OWNER, 'bench-' || g, 1 + g % 4, 512 * (1 + g % 8), 'ubuntu-server', 20,
	       (ARRAY['Running', 'Stopped', 'Paused'])[1 + g % 3], 'bench', 1, now(), now()
	FROM generate_series(1, $VMS) g"
COUNT=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[[ "$COUNT" == "$VMS" ]] || {
	echo "GET /api/vms returned $COUNT VMs, want $VMS" >&2
	exit 1
}
BYTES=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms" | wc -c)

# shellcheck source=deployments/bench/wrk.sh
source "$ROOT/deployments/bench/wrk.sh"
echo "GET /api/vms, $VMS VMs ($BYTES bytes), wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores"
printf "%-10s %12s %10s %10s\n" target "req/s" p50 p99
bench gateway "http://$GATEWAY/api/vms" -H "Authorization: Bearer $TOKEN"
bench vm-service "http://$VM/api/vms" -H "Authorization: Bearer $TOKEN"
