#!/usr/bin/env bash
# Gateway benchmark: authenticated requests through the gateway to a trivial upstream, compared with
# the upstream hit directly and with nginx proxying it without auth. Prints req/s, p50 and p99 for
# each, the gateway/nginx throughput ratio, and the password-hash cost of one login.
#
#   BENCH_DURATION (10s)  BENCH_CONNECTIONS (64)  BENCH_THREADS (2)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DURATION=${BENCH_DURATION:-10s}
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

UPSTREAM=127.0.0.1:$(free_port) JWKS=127.0.0.1:$(free_port) NGINX=127.0.0.1:$(free_port) GATEWAY=127.0.0.1:$(free_port)
go build -o "$DIR/fixture" ./deployments/bench/fixture
go build -o "$DIR/gateway" ./gateway/cmd/gateway

"$DIR/fixture" -upstream "$UPSTREAM" -jwks "$JWKS" -token-file "$DIR/token" & PIDS+=($!)
wait_http "http://$UPSTREAM/readyz"
mkdir -p "$DIR"/{body,proxy,fastcgi,uwsgi,scgi}
sed -e "s#@DIR@#$DIR#g" -e "s#@UPSTREAM@#$UPSTREAM#" -e "s#@LISTEN@#$NGINX#" deployments/bench/nginx.conf.tmpl > "$DIR/nginx.conf"
nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' & PIDS+=($!)
LISTEN_ADDR=$GATEWAY AUTH_SERVICE_URL=http://$JWKS VM_SERVICE_URL=http://$UPSTREAM \
	LIMEN_JWKS_URL=http://$JWKS/api/auth/jwks LOG_LEVEL=warn "$DIR/gateway" & PIDS+=($!)
wait_http "http://$NGINX/api/vms"
wait_http "http://$GATEWAY/api/health"
TOKEN=$(cat "$DIR/token")
if [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms") != 200 ]]; then
	echo "the gateway refused the benchmark token" >&2
	exit 1
fi

# shellcheck source=deployments/bench/lib.sh
source "$ROOT/deployments/bench/lib.sh"

printf "%-10s %12s %10s %10s\n" target "req/s" p50 p99
bench direct "http://$UPSTREAM/api/vms"
NGINX_ROW=$(bench nginx "http://$NGINX/api/vms")
echo "$NGINX_ROW"
GATEWAY_ROW=$(bench gateway "http://$GATEWAY/api/vms" -H "Authorization: Bearer $TOKEN")
echo "$GATEWAY_ROW"
awk -v n="$(echo "$NGINX_ROW" | awk '{print $2}')" -v g="$(echo "$GATEWAY_ROW" | awk '{print $2}')" \
	'BEGIN { printf "gateway/nginx throughput: %.2fx\n", g / n }'

echo "password hashing (argon2id, production parameters), one login:"
go test -run '^$' -bench BenchmarkLogin -benchtime 20x ./auth-service/internal/adapters/argon2/ | awk '/BenchmarkLogin/ { printf "  %.1f ms/op\n", $3 / 1e6 }'
