#!/usr/bin/env bash
# Quota benchmark: reservations per second with 64 concurrent clients against one quota-service and
# one Postgres (a private cluster, as make test's; the same synchronous_commit=off as make run's),
# over quota-service's HTTP port. Each client reserves a VM for its user (8 users, 8 clients each,
# 5 VMs allowed per user), then commits it and deletes the VM, or releases it. Prints reservations/s
# (admitted or refused), internal calls/s, the reservations' p50 and p99, and the overshoot: the
# times a user held more admitted reservations than the limit, seen by the clients or by a watcher of
# the quotas table, which must be 0 (the benchmark fails otherwise). BENCH_ROUNDS runs are made.
#
#   BENCH_DURATION (20s)  BENCH_ROUNDS (3)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DURATION=${BENCH_DURATION:-20s}
ROUNDS=${BENCH_ROUNDS:-3}

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
