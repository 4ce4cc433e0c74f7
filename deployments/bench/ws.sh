#!/usr/bin/env bash
# Live status benchmark: 1,000, 5,000 and 10,000 authenticated /ws/vm-status sockets on one gateway,
# spread over 100 users and a few admins, while VM events are published to the broker at 1,000 a
# second for 30 s (see deployments/bench/wsbench). Per stage: the gateway's RSS, Go heap and stacks,
# and goroutines per idle socket; the produce → client latency of every message (p50, p99, max); the
# messages dropped for clients that kept up and the clients that did not keep up that the gateway
# disconnected; the gateway's CPU while publishing.
#
#   WS_STAGES (1000,5000,10000)  WS_RATE (1000)  WS_DURATION (30s)  WS_ARGS: more wsbench flags
#   WS_PPROF: a directory for the gateway's live heap at idle and its CPU profile, per stage
#   (gateway-heap-<sockets>.pprof, gateway-cpu-<sockets>.pprof; the gateway then runs as
#   gateway/internal/service's TestServeForProfile), and wsbench's own (wsbench-cpu.pprof)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=deployments/bench/lib.sh
source "$ROOT/deployments/bench/lib.sh"

# Two descriptors per socket (the gateway's and the client's, in two processes), and some to spare.
ulimit -n "$(ulimit -Hn)"
stages=${WS_STAGES:-1000,5000,10000}
largest=$(tr ',' '\n' <<<"$stages" | sort -n | tail -1)
if (($(ulimit -n) < largest + 1024)); then
	echo "ulimit -n is $(ulimit -n) (hard limit): too few descriptors for $largest sockets" >&2
	exit 1
fi

DIR=$(mktemp -d /tmp/limen-ws-bench.XXXXXX)
BROKER_PID=
cleanup() {
	[[ -n "$BROKER_PID" ]] && kill "$BROKER_PID" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT

pprof_args=()
if [[ -n "${WS_PPROF:-}" ]]; then
	mkdir -p "$WS_PPROF"
	go test -c -o "$DIR/gateway.test" ./gateway/internal/service
	# The CPU profile (the whole stage) is named after the heap profile wsbench gives the gateway.
	# shellcheck disable=SC2016 # the wrapper expands it, per stage
	printf '#!/bin/bash\nLIMEN_BENCH_SERVE=1 exec "%s" -test.run "^TestServeForProfile$" -test.cpuprofile "${LIMEN_BENCH_HEAP/-heap-/-cpu-}"\n' \
		"$DIR/gateway.test" >"$DIR/gateway"
	chmod +x "$DIR/gateway"
	pprof_args=(-heap-dir "$(cd "$WS_PPROF" && pwd)" -cpuprofile "$(cd "$WS_PPROF" && pwd)/wsbench-cpu.pprof")
else
	go build -o "$DIR/gateway" ./gateway/cmd/gateway
fi
go build -o "$DIR/limen-broker" ./deployments/broker
go build -o "$DIR/wsbench" ./deployments/bench/wsbench
BROKER=127.0.0.1:$(free_port)
LIMEN_KAFKA_ADDR=$BROKER "$DIR/limen-broker" 2>"$DIR/broker.log" &
BROKER_PID=$!

echo "live status sockets: events at ${WS_RATE:-1000}/s for ${WS_DURATION:-30s}, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), per idle socket: gateway RSS, Go heap + stacks, goroutines"
# shellcheck disable=SC2086 # WS_ARGS are words
"$DIR/wsbench" -gateway "$DIR/gateway" -broker "$BROKER" -broker-pid "$BROKER_PID" -sockets "$stages" -rate "${WS_RATE:-1000}" \
	-duration "${WS_DURATION:-30s}" "${pprof_args[@]}" ${WS_ARGS:-}
