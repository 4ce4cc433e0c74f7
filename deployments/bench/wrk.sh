# shellcheck shell=bash
# wrk.sh — sourced by the benchmark scripts. Needs THREADS, CONNECTIONS, DURATION and DIR set.

# bench NAME URL [wrk args...] prints "NAME req/s p50 p99" after a 2 s warm-up.
bench() {
	local name=$1 url=$2
	shift 2
	wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$DIR/wrk-$name.out"
	awk -v name="$name" '
		/Requests\/sec/ { rps = $2 }
		$1 == "50%" { p50 = $2 }
		$1 == "99%" { p99 = $2 }
		/Non-2xx/ { bad = $NF }
		END { printf "%-10s %12s %10s %10s %s\n", name, rps, p50, p99, (bad ? "non-2xx: " bad : "") }' "$DIR/wrk-$name.out"
}
