#!/usr/bin/env bash
# VM list benchmark: GET /api/vms for a user with BENCH_VMS (1,000) VMs in the database, through the
# gateway (JWT check + proxy) and at vm-service directly, on the real local stack. Prints req/s, p50
# and p99 for each, once with one connection (latency) and once with BENCH_CONNECTIONS (load).
#
# The list is answered from Postgres alone: app.ListVMs has no hypervisor port, so the path cannot
# call libvirt (statuses are kept current by lifecycle events and the resync instead).
#
#   BENCH_VMS (1000)  BENCH_DURATION (10s)  BENCH_CONNECTIONS (16)  BENCH_THREADS (2)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=deployments/bench/lib.sh
source deployments/bench/lib.sh
VMS=${BENCH_VMS:-1000}
DURATION=${BENCH_DURATION:-10s}
LOAD_CONNECTIONS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

start_stack vms
OWNER=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/auth/me" | json_field id)
PSQL=$(command -v psql || printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)
PGPASSWORD=$(<"$DIR/data/postgres/limen-password") "$PSQL" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d limen -v ON_ERROR_STOP=1 -c "
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

for CONNECTIONS in 1 "$LOAD_CONNECTIONS"; do
	echo "GET /api/vms, $VMS VMs ($BYTES bytes), wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores"
	printf "%-10s %12s %10s %10s\n" target "req/s" p50 p99
	bench gateway "http://$GATEWAY/api/vms" -H "Authorization: Bearer $TOKEN"
	bench vm-service "http://$VM_ADDR/api/vms" -H "Authorization: Bearer $TOKEN"
done
