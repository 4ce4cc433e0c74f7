#!/usr/bin/env bash
# Gateway benchmark: authenticated requests through the gateway to a trivial upstream, compared with
# the upstream hit directly, with nginx proxying it without auth, and with fastproxy (fasthttp alone,
# the floor under Fiber and the gateway). The targets take turns for BENCH_ROUNDS rounds, since one
# run on a shared 2-core box swings by 15 % and more; each target's median round by req/s is printed
# with its p50, p99 and the proxy's CPU time per request (the upstream's own for "direct"). Then the
# gateway's goals, each round's ratios taken within the round: throughput against fastproxy and
# nginx, the p99 it adds over fastproxy; the allocations per proxied request (in process,
# BenchmarkProxiedRequest); and the password-hash cost of one login.
#
#   BENCH_DURATION (5s)  BENCH_ROUNDS (5)  BENCH_CONNECTIONS (64)  BENCH_THREADS (2)
#   BENCH_PPROF: a directory; the gateway then runs as its test binary with CPU and allocation
#   profiles (gateway-cpu.pprof, gateway-mem.pprof, whose top entries are printed at the end).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=deployments/bench/lib.sh
source "$ROOT/deployments/bench/lib.sh"
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}

for tool in wrk nginx; do
	command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done

DIR=$(mktemp -d /tmp/limen-bench.XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT

wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

UPSTREAM=127.0.0.1:$(free_port) JWKS=127.0.0.1:$(free_port) NGINX=127.0.0.1:$(free_port) GATEWAY=127.0.0.1:$(free_port)
FASTPROXY=127.0.0.1:$(free_port)
go build -o "$DIR/fixture" ./deployments/bench/fixture
go build -o "$DIR/fastproxy" ./deployments/bench/fastproxy
if [[ -n "${BENCH_PPROF:-}" ]]; then
	mkdir -p "$BENCH_PPROF"
	BENCH_PPROF=$(cd "$BENCH_PPROF" && pwd)
	go test -c -o "$DIR/gateway.test" ./gateway/internal/service
	gateway_cmd=(env LIMEN_BENCH_SERVE=1 "$DIR/gateway.test" -test.run '^TestServeForProfile$'
		-test.cpuprofile "$BENCH_PPROF/gateway-cpu.pprof" -test.memprofile "$BENCH_PPROF/gateway-mem.pprof")
else
	go build -o "$DIR/gateway" ./gateway/cmd/gateway
	gateway_cmd=("$DIR/gateway")
fi

"$DIR/fixture" -upstream "$UPSTREAM" -jwks "$JWKS" -token-file "$DIR/token" & PIDS+=($!)
FIXTURE_PID=$!
wait_http "http://$UPSTREAM/readyz"
"$DIR/fastproxy" -listen "$FASTPROXY" -upstream "$UPSTREAM" & PIDS+=($!)
FASTPROXY_PID=$!
mkdir -p "$DIR"/{body,proxy,fastcgi,uwsgi,scgi}
sed -e "s#@DIR@#$DIR#g" -e "s#@UPSTREAM@#$UPSTREAM#" -e "s#@LISTEN@#$NGINX#" deployments/bench/nginx.conf.tmpl > "$DIR/nginx.conf"
nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' & PIDS+=($!)
NGINX_PID=$!
LISTEN_ADDR=$GATEWAY AUTH_SERVICE_URL=http://$JWKS VM_SERVICE_URL=http://$UPSTREAM \
	LIMEN_JWKS_URL=http://$JWKS/api/auth/jwks LIMEN_METRICS_ADDR=off LOG_LEVEL=warn "${gateway_cmd[@]}" & PIDS+=($!)
GATEWAY_PID=$!
wait_http "http://$NGINX/api/vms"
wait_http "http://$FASTPROXY/api/vms"
wait_http "http://$GATEWAY/api/health"
TOKEN=$(cat "$DIR/token")
if [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms") != 200 ]]; then
	echo "the gateway refused the benchmark token" >&2
	exit 1
fi

# One row per target and round in $DIR/rows-<target>; the median round by req/s is reported. The
# proxies take turns in an order that rotates every round, and each round's ratios are taken
# within the round: on a shared machine the neighbours' load drifts between rounds far more than
# within one.
proxies=(nginx fastproxy gateway)
for round in $(seq "$ROUNDS"); do
	CPU_PIDS=$FIXTURE_PID bench direct "http://$UPSTREAM/api/vms" >>"$DIR/rows-direct"
	for i in 0 1 2; do
		case ${proxies[$(((i + round) % 3))]} in
		nginx) CPU_PIDS=$(pgrep -P "$NGINX_PID" | xargs) bench nginx "http://$NGINX/api/vms" ;;
		fastproxy) CPU_PIDS=$FASTPROXY_PID bench fastproxy "http://$FASTPROXY/api/vms" ;;
		gateway) CPU_PIDS=$GATEWAY_PID bench gateway "http://$GATEWAY/api/vms" -H "Authorization: Bearer $TOKEN" ;;
		esac | tee -a "$DIR/rows-${proxies[$(((i + round) % 3))]}" >>"$DIR/round-$round"
	done
	echo "round $round of $ROUNDS done" >&2
done
median_row() { sort -k2,2 -n "$DIR/rows-$1" | awk '{ rows[NR] = $0 } END { print rows[int((NR + 1) / 2)] }'; }

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds, $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1))"
printf "%-10s %12s %10s %10s %12s\n" target "req/s" p50 p99 "CPU µs/req"
for target in direct nginx fastproxy gateway; do median_row "$target"; done
# Per round: gateway/fastproxy and gateway/nginx throughput, the p99 the gateway adds over fastproxy.
for round in $(seq "$ROUNDS"); do
	awk 'function ms(v) { return v ~ /us$/ ? v / 1000 : v ~ /ms$/ ? v + 0 : v * 1000 }
		{ rps[$1] = $2; p99[$1] = ms($4) }
		END { printf "%.3f %.3f %.2f\n", rps["gateway"] / rps["fastproxy"], rps["gateway"] / rps["nginx"], p99["gateway"] - p99["fastproxy"] }' "$DIR/round-$round"
done >"$DIR/ratios"
ratio() { sort -n -k"$1","$1" "$DIR/ratios" | awk -v k="$1" '{ v[NR] = $k } END { printf "%s (%s to %s)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
echo "per round (gateway/fastproxy, gateway/nginx, p99 added ms): $(awk '{ printf "%s[%s %s %s]", (NR > 1 ? " " : ""), $1, $2, $3 }' "$DIR/ratios")"
echo "per round, median (lowest to highest) of $ROUNDS:"
echo "  gateway/fastproxy throughput $(ratio 1), goal >= 0.90"
echo "  gateway/nginx throughput     $(ratio 2), goal >= 0.85"
echo "  gateway p99 - fastproxy p99  $(ratio 3) ms, goal <= 1"
echo "in process (BenchmarkProxiedRequest, goal <= 2 allocs per proxied request):"
go test -run '^$' -bench BenchmarkProxiedRequest -benchtime 20000x ./gateway/internal/service/ |
	awk '/^BenchmarkProxiedRequest/ { for (i = 2; i <= NF; i++) if ($i ~ /\/op$/) printf "  %s %s\n", $(i - 1), $i }'

if [[ -n "${BENCH_PPROF:-}" ]]; then
	kill -TERM "$GATEWAY_PID"
	wait "$GATEWAY_PID" || true # the profiles are written as it exits
	echo "gateway profile (all rounds): $BENCH_PPROF"
	go tool pprof -top -nodecount 25 "$BENCH_PPROF/gateway-cpu.pprof" 2>/dev/null | sed -n '4,$p'
	go tool pprof -sample_index alloc_space -top -nodecount 15 "$BENCH_PPROF/gateway-mem.pprof" 2>/dev/null | sed -n '4,$p'
fi

echo "password hashing (argon2id, production parameters), one login:"
go test -run '^$' -bench BenchmarkLogin -benchtime 20x ./auth-service/internal/adapters/argon2/ | awk '/BenchmarkLogin/ { printf "  %.1f ms/op\n", $3 / 1e6 }'
