#!/usr/bin/env bash
# Gateway benchmark: authenticated requests through the gateway to a trivial upstream, compared with
# the upstream hit directly, with nginx proxying it without auth, and with fastproxy (fasthttp alone,
# the floor under Fiber and the gateway). The targets take turns for BENCH_ROUNDS rounds, since one
# run on a shared 2-core box swings by 15 %; each target's median round by req/s is printed with its
# p50, p99 and the proxy's CPU time per request (the upstream's own for "direct"). Then the
# throughput ratios and the password-hash cost of one login.
#
#   BENCH_DURATION (5s)  BENCH_ROUNDS (3)  BENCH_CONNECTIONS (64)  BENCH_THREADS (2)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=deployments/bench/lib.sh
source "$ROOT/deployments/bench/lib.sh"
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
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
go build -o "$DIR/gateway" ./gateway/cmd/gateway

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
	LIMEN_JWKS_URL=http://$JWKS/api/auth/jwks LIMEN_METRICS_ADDR=off LOG_LEVEL=warn "$DIR/gateway" & PIDS+=($!)
GATEWAY_PID=$!
wait_http "http://$NGINX/api/vms"
wait_http "http://$FASTPROXY/api/vms"
wait_http "http://$GATEWAY/api/health"
TOKEN=$(cat "$DIR/token")
if [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms") != 200 ]]; then
	echo "the gateway refused the benchmark token" >&2
	exit 1
fi

# One row per target and round in $DIR/rows-<target>; the median round by req/s is reported.
for round in $(seq "$ROUNDS"); do
	CPU_PIDS=$FIXTURE_PID bench direct "http://$UPSTREAM/api/vms" >>"$DIR/rows-direct"
	CPU_PIDS=$(pgrep -P "$NGINX_PID" | xargs) bench nginx "http://$NGINX/api/vms" >>"$DIR/rows-nginx"
	CPU_PIDS=$FASTPROXY_PID bench fastproxy "http://$FASTPROXY/api/vms" >>"$DIR/rows-fastproxy"
	CPU_PIDS=$GATEWAY_PID bench gateway "http://$GATEWAY/api/vms" -H "Authorization: Bearer $TOKEN" >>"$DIR/rows-gateway"
	echo "round $round of $ROUNDS done" >&2
done
median_row() { sort -k2,2 -n "$DIR/rows-$1" | awk '{ rows[NR] = $0 } END { print rows[int((NR + 1) / 2)] }'; }
rps_of() { median_row "$1" | awk '{ print $2 }'; }

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds, $(nproc) cores"
printf "%-10s %12s %10s %10s %12s\n" target "req/s" p50 p99 "CPU µs/req"
for target in direct nginx fastproxy gateway; do median_row "$target"; done
awk -v n="$(rps_of nginx)" -v f="$(rps_of fastproxy)" -v g="$(rps_of gateway)" 'BEGIN {
	printf "gateway/nginx throughput: %.2fx (fastproxy/nginx %.2fx, gateway/fastproxy %.2fx)\n", g / n, f / n, g / f
}'

echo "password hashing (argon2id, production parameters), one login:"
go test -run '^$' -bench BenchmarkLogin -benchtime 20x ./auth-service/internal/adapters/argon2/ | awk '/BenchmarkLogin/ { printf "  %.1f ms/op\n", $3 / 1e6 }'
