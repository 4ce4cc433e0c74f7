#!/usr/bin/env bash
# Quota benchmark: reservations per second with 64 concurrent clients against one quota-service and
# one Postgres (a private cluster, as make test's; the same synchronous_commit=off as make run's),
# over quota-service's HTTP port. Each client reserves a VM for its user (8 users, 8 clients each,
# 5 VMs allowed per user), then commits it and deletes the VM, or releases it. Prints reservations/s
# (admitted or refused), internal calls/s, the reservations' p50 and p99, and the overshoot: the
# times a user held more admitted reservations than the limit, seen by the clients or by a watcher of
# the quotas table, which must be 0 (the benchmark fails otherwise). BENCH_ROUNDS runs are made.
#
# Then what quota-service adds to a VM create through the gateway, on the real local stack
# (deployments/bench/quotabench): BENCH_CREATES creates with vm-service reserving with quota-service,
# interleaved with as many reserving with a stand-in that admits everything at once, each VM deleted
# after its create; p50 and p99 of both, their difference, and vm-service's and quota-service's own
# time per create from their request histograms.
#
#   BENCH_DURATION (20s)  BENCH_ROUNDS (3)  BENCH_CREATES (200)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DURATION=${BENCH_DURATION:-20s}
ROUNDS=${BENCH_ROUNDS:-3}
CREATES=${BENCH_CREATES:-200}

echo "quota-service reservations, 64 clients, $DURATION per round, $ROUNDS rounds, on $(nproc) cores"
go test -run '^$' -bench '^BenchmarkReservations$' -benchtime "$DURATION" -count "$ROUNDS" ./quota-service/internal/service/ |
	awk '/^BenchmarkReservations/ {
		for (i = 3; i < NF; i++) m[$(i + 1)] = $i
		printf "%6.0f reservations/s  %5.0f calls/s  p50 %5.2f ms  p99 %6.2f ms  admitted %3.0f%%  CPU per reservation %3.0f µs (service and clients) + %3.0f µs (Postgres)  overshoot %d  failures %d\n",
			m["reservations/s"], m["calls/s"], m["p50-ms"], m["p99-ms"], 100 * m["admitted/reservation"],
			m["process-cpu-µs/reservation"], m["postgres-cpu-µs/reservation"], m["overshoot"], m["failures"]
	}
	/^(FAIL|--- FAIL|panic)|bench_test\.go/ { failed = 1; print }
	END { exit failed }'

# shellcheck source=deployments/bench/lib.sh
source deployments/bench/lib.sh
start_stack quota
go build -o "$DIR/quotabench" ./deployments/bench/quotabench
pid_of() { pgrep -f "^$DIR/data/bin/$1\$" | head -n 1; }
rc=0
"$DIR/quotabench" -bin "$DIR/data/bin" -vm-pid "$(pid_of vm-service)" -gateway-pid "$(pid_of gateway)" -logs "$DIR" \
	-token "$TOKEN" -n "$CREATES" || rc=$?
# A failed run may leave VMs behind: none may stay in the host's libvirt.
curl -fs -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms?all=true" |
	python3 -c 'import json, sys; print("\n".join(vm["uuid"] for vm in json.load(sys.stdin)))' |
	while read -r vm; do
		[[ -z "$vm" ]] || curl -fs -X DELETE -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms/$vm" >/dev/null || true
	done || true
exit "$rc"
