#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called indirectly (traps, env_<service>, wait_until)
# run.sh — the LIMEN local stack, in the foreground (`make run`).
#
# Starts what is not given from outside — a throwaway Postgres cluster, a Kafka-protocol broker
# (limen-broker, kfake), libvirtd — then builds and starts the services, waits until the gateway's
# /api/health answers 200, and prints the URL and the admin login. Ctrl-C or SIGTERM stops everything
# it started (and nothing else) and exits 0; if a service dies on its own, it stops everything and
# exits non-zero.
#
# The own Postgres cluster never takes a login without a password (scram-sha-256, local and host):
# its superuser postgres has a random password, generated once and kept (mode 0600, the postgres
# user's) in $LIMEN_DATA_DIR/postgres/limen-password; DATABASE_URL carries it to the services. A
# cluster an earlier run made with trust gets that password and a scram-sha-256 pg_hba.conf (the old
# one kept as pg_hba.conf.trust-backup) before it starts listening.
#
# Environment (defaults in brackets):
#   LIMEN_DATA_DIR       [./.limen]  state: postgres/ (with limen-password), bin/, logs/, keys/, isos/,
#                                    admin-password, internal-token
#   DATABASE_URL         [unset]     use this database; unset: own cluster in $LIMEN_DATA_DIR/postgres
#   LIMEN_PG_PORT        [15432]     port of that cluster (127.0.0.1; password in postgres/limen-password)
#   KAFKA_BROKERS        [unset]     use these brokers; unset: start limen-broker on LIMEN_KAFKA_ADDR
#   LIMEN_KAFKA_ADDR     [127.0.0.1:19092]
#   LIMEN_START_LIBVIRTD [1]         0: never start libvirtd (1: start it when its socket does not answer)
#   LIBVIRT_URI, LIBVIRT_SOCKET [unset] use this libvirt for vm-service (unset: the host's qemu:///system;
#                                    vm-service is left out when that does not answer)
#   LIMEN_VM_ADDR        [127.0.0.1:18082]
#   LIMEN_MEDIA_ADDR     [127.0.0.1:18083]
#   LIMEN_QUOTA_ADDR     [127.0.0.1:18084]
#   LIMEN_STORAGE_POOL_PATH [$LIMEN_DATA_DIR/vms]  where VM disks go
#   LIMEN_AUTH_ADDR      [127.0.0.1:18081]
#   LIMEN_GATEWAY_ADDR   [127.0.0.1:18443]
#   LIMEN_ADMIN_USERNAME [admin]
#   LIMEN_ADMIN_PASSWORD [unset]     unset: generated once, kept in $LIMEN_DATA_DIR/admin-password
#   LIMEN_INTERNAL_TOKEN [unset]     unset: generated once, kept in $LIMEN_DATA_DIR/internal-token
#   LIMEN_ISO_DIR        [$LIMEN_DATA_DIR/isos]
#   LIMEN_LOG_TEE        [auto]      1: also copy service logs to the terminal; auto: when it is a tty
#   LIMEN_HEALTH_TIMEOUT [60]        seconds to wait for the gateway's /api/health
# Every other service setting (LOG_LEVEL, LIMEN_ACCESS_TOKEN_TTL, ...) passes through from the
# environment to the services; see README.md.
set -euo pipefail

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
	echo "run.sh needs bash 5.1 or newer" >&2
	exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# ---- configuration -----------------------------------------------------------------------------
LIMEN_DATA_DIR=${LIMEN_DATA_DIR:-./.limen}
mkdir -p "$LIMEN_DATA_DIR"
LIMEN_DATA_DIR=$(cd "$LIMEN_DATA_DIR" && pwd) # absolute, relative to where we were started
export LIMEN_DATA_DIR
cd "$ROOT"

LIMEN_PG_PORT=${LIMEN_PG_PORT:-15432}
LIMEN_KAFKA_ADDR=${LIMEN_KAFKA_ADDR:-127.0.0.1:19092}
LIMEN_START_LIBVIRTD=${LIMEN_START_LIBVIRTD:-1}
LIMEN_AUTH_ADDR=${LIMEN_AUTH_ADDR:-127.0.0.1:18081}
LIMEN_GATEWAY_ADDR=${LIMEN_GATEWAY_ADDR:-127.0.0.1:18443}
LIMEN_LOG_TEE=${LIMEN_LOG_TEE:-auto}
LIMEN_HEALTH_TIMEOUT=${LIMEN_HEALTH_TIMEOUT:-60}
export LIMEN_ADMIN_USERNAME=${LIMEN_ADMIN_USERNAME:-admin}
export LIMEN_ISO_DIR=${LIMEN_ISO_DIR:-$LIMEN_DATA_DIR/isos}
export LIMEN_JWKS_URL=${LIMEN_JWKS_URL:-http://$LIMEN_AUTH_ADDR/api/auth/jwks}
export LIMEN_JWT_ISSUER=${LIMEN_JWT_ISSUER:-limen}
export LIMEN_JWT_AUDIENCE=${LIMEN_JWT_AUDIENCE:-limen-api}
export LOG_LEVEL=${LOG_LEVEL:-info}

BIN=$LIMEN_DATA_DIR/bin
LOGS=$LIMEN_DATA_DIR/logs
mkdir -p "$BIN" "$LOGS" "$LIMEN_ISO_DIR"

# ---- services: one line each, in start order (the gateway last) ---------------------------------
# name, listen address, Go package. Each service gets LISTEN_ADDR, and every later one gets
# <NAME>_URL=http://<address> (auth-service -> AUTH_SERVICE_URL, vm-service -> VM_SERVICE_URL, ...).
# Extra env for one service: define a function env_<name with _ for -> that prints KEY=VALUE lines.
SERVICES=()
add_service() { SERVICES+=("$1|$2|$3"); }
add_service auth-service "$LIMEN_AUTH_ADDR" ./auth-service/cmd/auth-service
# Before vm-service, which asks it for every growth of a user's usage (QUOTA_SERVICE_URL).
add_service quota-service "${LIMEN_QUOTA_ADDR:-127.0.0.1:18084}" ./quota-service/cmd/quota-service
add_service vm-service "${LIMEN_VM_ADDR:-127.0.0.1:18082}" ./vm-service/cmd/vm-service
add_service media-service "${LIMEN_MEDIA_ADDR:-127.0.0.1:18083}" ./media-service/cmd/media-service
add_service gateway "$LIMEN_GATEWAY_ADDR" ./gateway/cmd/gateway

# Only auth-service sees the admin password and owns the signing keys.
env_auth_service() {
	echo "LIMEN_ADMIN_PASSWORD=$LIMEN_ADMIN_PASSWORD"
	echo "LIMEN_INTERNAL_TOKEN=$LIMEN_INTERNAL_TOKEN"
	# Asked whether a user owns VMs before the user is deleted; it starts later.
	skip_vm_service >/dev/null || echo "VM_SERVICE_URL=http://${LIMEN_VM_ADDR:-127.0.0.1:18082}"
	echo "LIMEN_JWT_KEY_DIR=${LIMEN_JWT_KEY_DIR:-$LIMEN_DATA_DIR/keys}"
}

# vm-service drives libvirt: KVM when a real guest boots under it through that libvirt, else QEMU's
# software emulation. A /dev/kvm that exists proves nothing (broken nested virtualisation crashes or
# hangs guests), so kvmprobe boots the test guest once and keeps the verdict.
domain_type() {
	if [[ -n "${LIMEN_DOMAIN_TYPE:-}" ]]; then
		echo "$LIMEN_DOMAIN_TYPE"
	elif [[ ! -e /dev/kvm ]]; then
		echo qemu
	elif [[ "${LIBVIRT_URI:-qemu:///system}" == *+* ]]; then
		echo kvm # a remote libvirt host: its KVM is not this machine's to probe
	else
		"$BIN/kvmprobe" -socket "${LIBVIRT_SOCKET:-/var/run/libvirt/libvirt-sock}" -uri "${LIBVIRT_URI:-qemu:///system}" \
			-cache "$LIMEN_DATA_DIR/kvm-verdict"
	fi
}
env_vm_service() {
	echo "LIMEN_DOMAIN_TYPE=$(domain_type)"
	echo "LIMEN_STORAGE_POOL_PATH=${LIMEN_STORAGE_POOL_PATH:-$LIMEN_DATA_DIR/vms}"
	echo "LIMEN_INTERNAL_TOKEN=$LIMEN_INTERNAL_TOKEN"
	# media-service starts after vm-service, so its URL is not exported yet.
	echo "MEDIA_SERVICE_URL=http://${LIMEN_MEDIA_ADDR:-127.0.0.1:18083}"
}

# media-service keeps the ISO library in a libvirt storage pool over LIMEN_ISO_DIR.
env_media_service() {
	echo "LIMEN_INTERNAL_TOKEN=$LIMEN_INTERNAL_TOKEN"
}

# quota-service takes reservations on its internal routes and asks auth-service whether a user exists.
env_quota_service() {
	echo "LIMEN_INTERNAL_TOKEN=$LIMEN_INTERNAL_TOKEN"
}

# The gateway redeems console tickets with vm-service on its internal route.
env_gateway() {
	echo "LIMEN_INTERNAL_TOKEN=$LIMEN_INTERNAL_TOKEN"
}

# skip_<name> says why a service cannot run here (and succeeds), or fails when it can.
skip_vm_service() {
	[[ -n "${LIBVIRT_URI:-}${LIBVIRT_SOCKET:-}" ]] && return 1
	libvirt_answers && return 1
	echo "libvirt does not answer on qemu:///system"
}
skip_media_service() {
	[[ -n "${VM_SERVICE_URL:-}" ]] || {
		echo "vm-service is not running"
		return 0
	}
	skip_vm_service
}

# ---- helpers -----------------------------------------------------------------------------------
if [[ -t 2 ]]; then B=$'\033[1m' R=$'\033[1;31m' N=$'\033[0m'; else B='' R='' N=''; fi
say() { printf '%slimen:%s %s\n' "$B" "$N" "$*" >&2; }
die() {
	printf '%slimen: %s%s\n' "$R" "$*" "$N" >&2
	exit 1
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# port_busy HOST:PORT — something accepts TCP connections there.
port_busy() {
	local host=${1%:*} port=${1##*:}
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# alive PID — the process exists and is not a zombie.
alive() {
	local state
	[[ -r /proc/$1/stat ]] || return 1
	state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# http_ok URL — GET answers 2xx.
http_ok() { "$BIN/probe" -timeout 2s "$1" 2>/dev/null; }

# fresh_log FILE — keep the previous run's log as FILE.prev and start an empty one.
fresh_log() {
	[[ -s "$1" ]] && mv -f "$1" "$1.prev"
	: >"$1"
}

show_log() {
	local f=$1
	[[ -f "$f" ]] || return 0
	printf -- '----- last lines of %s -----\n' "$f" >&2
	tail -n 40 "$f" >&2
	printf -- '-----\n' >&2
}

# ---- state of what we started, and the cleanup ------------------------------------------------
STARTED_PIDS=()  # "name|pid|logfile", in start order
PG_STARTED=0
PGDATA=
PG_BIN=
LIBVIRTD_STARTED_PID=
VIRTLOGD_STARTED_PID=
CLEANED=0

run_as_postgres() {
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

stop_pid() { # name pid — SIGTERM, wait up to 15 s, then SIGKILL
	local name=$1 pid=$2 i
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 150; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	say "$name (pid $pid) did not stop in 15 s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	((CLEANED)) && return 0
	CLEANED=1
	trap '' INT TERM
	local i entry name pid
	# Services and broker: ask all to stop at once (newest first), then wait for each.
	for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
		IFS='|' read -r name pid _ <<<"${STARTED_PIDS[i]}"
		if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
	done
	for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
		IFS='|' read -r name pid _ <<<"${STARTED_PIDS[i]}"
		stop_pid "$name" "$pid"
		wait "$pid" 2>/dev/null || true
	done
	if ((PG_STARTED)); then
		say "stopping postgres"
		run_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			run_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [[ -n "$LIBVIRTD_STARTED_PID" ]]; then
		say "stopping libvirtd (we started it)"
		stop_pid libvirtd "$LIBVIRTD_STARTED_PID"
	fi
	if [[ -n "$VIRTLOGD_STARTED_PID" ]]; then
		stop_pid virtlogd "$VIRTLOGD_STARTED_PID"
	fi
	# Log copiers (process substitutions) end with their service; nothing else is left.
}

on_signal() {
	say "stopping (SIG$1)"
	cleanup
	say "stopped"
	exit 0
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'say "failed: $BASH_COMMAND (line $LINENO, status $?)"' ERR

# ---- preflight ---------------------------------------------------------------------------------
command -v go >/dev/null || die "go is not in PATH"
busy=()
for entry in "${SERVICES[@]}"; do
	IFS='|' read -r _ addr _ <<<"$entry"
	port_busy "$addr" && busy+=("$addr")
done
[[ -z "${KAFKA_BROKERS:-}" ]] && port_busy "$LIMEN_KAFKA_ADDR" && busy+=("$LIMEN_KAFKA_ADDR (broker)")
[[ -z "${DATABASE_URL:-}" ]] && port_busy "127.0.0.1:$LIMEN_PG_PORT" && busy+=("127.0.0.1:$LIMEN_PG_PORT (postgres)")
((${#busy[@]} == 0)) || die "already in use: ${busy[*]} — another 'make run'? Stop it, or choose other addresses (see README)"

# ---- secrets ---------------------------------------------------------------------------------------
# secret_at FILE — FILE holds a random secret (24 letters and digits, mode 0600), made on first use, so a
# second `make run` finds the same one.
secret_at() {
	local f=$1
	if [[ ! -s "$f" ]]; then
		(
			umask 077
			head -c 48 /dev/urandom | base64 | LC_ALL=C tr -dc 'A-Za-z0-9' | cut -c1-24 | tr -d '\n' >"$f.tmp"
			mv "$f.tmp" "$f"
		)
	fi
	chmod 600 "$f"
}
# secret_file NAME — the secret kept in $LIMEN_DATA_DIR/NAME.
secret_file() {
	secret_at "$LIMEN_DATA_DIR/$1"
	cat "$LIMEN_DATA_DIR/$1"
}
LIMEN_ADMIN_PASSWORD=${LIMEN_ADMIN_PASSWORD:-$(secret_file admin-password)}
export -n LIMEN_ADMIN_PASSWORD # passed to auth-service only (env_auth_service)
# Peer services present it on each other's /internal routes.
LIMEN_INTERNAL_TOKEN=${LIMEN_INTERNAL_TOKEN:-$(secret_file internal-token)}

# ---- build -----------------------------------------------------------------------------------------
say "building into $BIN"
build() { # name package
	go build -o "$BIN/$1" "$2" || die "build of $2 failed"
}
build probe ./deployments/probe
build kvmprobe ./deployments/kvmprobe
[[ -z "${KAFKA_BROKERS:-}" ]] && build limen-broker ./deployments/broker
for entry in "${SERVICES[@]}"; do
	IFS='|' read -r name _ pkg <<<"$entry"
	build "$name" "$pkg"
done

# ---- postgres ------------------------------------------------------------------------------------
find_pg_bin() {
	local p d
	if p=$(command -v initdb 2>/dev/null) && [[ -x "$(dirname "$(readlink -f "$p")")/pg_ctl" ]]; then
		dirname "$(readlink -f "$p")"
		return
	fi
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && {
			echo "$d"
			return
		}
	done
	return 1
}

# pg_secret_at FILE — secret_at, the postgres user's when we are root (it lives beside its cluster).
pg_secret_at() {
	secret_at "$1"
	if is_root; then chown postgres: "$1"; fi
}

# hba_without_trust FILE — pg_hba.conf FILE with each local and host line's trust (which takes no
# options, so it ends the line before any comment) changed to scram-sha-256.
hba_without_trust() {
	awk '{
		line = $0
		comment = ""
		if ((i = index(line, "#")) > 0) {
			comment = substr(line, i)
			line = substr(line, 1, i - 1)
		}
		if (line ~ /^[ \t]*(local|host|hostssl|hostnossl|hostgssenc|hostnogssenc)[ \t]/ && match(line, /[ \t]trust[ \t]*$/))
			line = substr(line, 1, RSTART) "scram-sha-256" substr(line, RSTART + 6)
		print line comment
	}' "$1"
}

# pg_sql ARGS... — psql as postgres on our cluster; the password goes by the environment, not argv.
pg_sql() {
	PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$LIMEN_PG_PORT" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 -tA "$@"
}

if [[ -z "${DATABASE_URL:-}" ]]; then
	PG_BIN=$(find_pg_bin) || die "PostgreSQL not found (run deployments/local/ensure-deps.sh as root, or set DATABASE_URL)"
	PGDATA=$LIMEN_DATA_DIR/postgres
	mkdir -p "$PGDATA"
	fresh_log "$LOGS/postgres.log"
	if is_root; then
		chown postgres: "$PGDATA" "$LOGS/postgres.log"
		chmod 700 "$PGDATA"
		runuser -u postgres -- test -w "$PGDATA" ||
			die "the postgres user cannot reach $PGDATA: make its parent directories traversable (chmod o+x) or choose another LIMEN_DATA_DIR"
	fi
	if run_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
		die "a postgres server is already running on $PGDATA — another 'make run' with this LIMEN_DATA_DIR?"
	fi
	# The superuser's password lives in the cluster's directory; nothing ever logs in without it.
	PG_PASSWORD_FILE=$PGDATA/limen-password
	set_password=0
	if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
		say "initialising a Postgres cluster in $PGDATA"
		rm -f "$PG_PASSWORD_FILE" # of a cluster that is gone: initdb wants an empty directory
		# initdb reads the password from a file the postgres user can read, outside the empty $PGDATA.
		pwfile=$LIMEN_DATA_DIR/postgres-initdb-password
		rm -f "$pwfile"
		pg_secret_at "$pwfile"
		run_as_postgres "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" \
			-E UTF8 --no-sync >"$LOGS/initdb.log" 2>&1 ||
			{
				rm -f "$pwfile"
				show_log "$LOGS/initdb.log"
				die "initdb failed"
			}
		mv -f "$pwfile" "$PG_PASSWORD_FILE"
	elif [[ ! -s "$PG_PASSWORD_FILE" ]]; then
		set_password=1 # a cluster from before passwords, or the file was lost: a new one
	fi
	pg_secret_at "$PG_PASSWORD_FILE"
	PG_PASSWORD=$(<"$PG_PASSWORD_FILE")
	# A cluster from an earlier run may still trust every local login: give the superuser the password
	# and switch those lines to scram-sha-256 before the server listens.
	pg_hba=$PGDATA/pg_hba.conf
	upgrade_hba=0
	if ! cmp -s "$pg_hba" <(hba_without_trust "$pg_hba"); then
		upgrade_hba=1
		set_password=1
	fi
	if ((set_password)); then
		say "setting the password of the postgres role (kept in $PG_PASSWORD_FILE)"
		# Single-user mode: no listener, no login; the statement goes through stdin, not argv, and is
		# not logged even if it fails (log_min_error_statement).
		printf "ALTER ROLE postgres PASSWORD '%s'\n" "$PG_PASSWORD" |
			run_as_postgres "$PG_BIN/postgres" --single -D "$PGDATA" -c password_encryption=scram-sha-256 \
				-c log_min_error_statement=panic postgres >>"$LOGS/postgres.log" 2>&1 ||
			{
				show_log "$LOGS/postgres.log"
				die "could not set the password of the postgres role"
			}
	fi
	if ((upgrade_hba)); then
		say "pg_hba.conf: trust -> scram-sha-256 (the old one is kept as $pg_hba.trust-backup)"
		cp -p "$pg_hba" "$pg_hba.trust-backup"
		cp -p "$pg_hba" "$pg_hba.new" # the owner and mode of the original; then its content without trust
		hba_without_trust "$pg_hba.trust-backup" >"$pg_hba.new"
		mv -f "$pg_hba.new" "$pg_hba"
	fi
	say "starting postgres on 127.0.0.1:$LIMEN_PG_PORT"
	PG_STARTED=1 # none ran on $PGDATA before: from here on, whatever runs there is ours to stop
	run_as_postgres "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$LOGS/postgres.log" -w -t 60 \
		-o "-p $LIMEN_PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c synchronous_commit=off -c password_encryption=scram-sha-256" \
		start >/dev/null ||
		{
			show_log "$LOGS/postgres.log"
			die "postgres did not start"
		}
	if ! answer=$(pg_sql -c 'SELECT 1' 2>&1); then
		die "postgres refused the password in $PG_PASSWORD_FILE: $answer"
	fi
	if [[ "$(pg_sql -c "SELECT 1 FROM pg_database WHERE datname = 'limen'")" != 1 ]]; then
		pg_sql -c 'CREATE DATABASE limen' >/dev/null
	fi
	export DATABASE_URL="postgres://postgres:$PG_PASSWORD@127.0.0.1:$LIMEN_PG_PORT/limen?sslmode=disable"
else
	say "using DATABASE_URL from the environment"
fi

# ---- kafka ---------------------------------------------------------------------------------------
# start_child name logfile command... — start in the background, log to file (and the terminal).
tee_on() {
	case "$LIMEN_LOG_TEE" in
	1 | true | yes) return 0 ;;
	auto) [[ -t 2 ]] ;;
	*) return 1 ;;
	esac
}
LAST_PID=
start_child() {
	local name=$1 log=$2
	shift 2
	fresh_log "$log"
	if tee_on; then
		# The copier ignores INT/TERM so that a Ctrl-C to the process group cannot break the pipe
		# under a service that is still logging its shutdown; it ends when the service does.
		"$@" > >(
			trap '' INT TERM
			tee -a "$log" | sed -u "s/^/[$name] /" >&2
		) 2>&1 &
	else
		"$@" >>"$log" 2>&1 &
	fi
	LAST_PID=$!
	STARTED_PIDS+=("$name|$LAST_PID|$log")
}

# wait_until name pid timeout-seconds command... — poll the command until it succeeds; fail if the
# process dies or time runs out.
wait_until() {
	local name=$1 pid=$2 timeout=$3 log=$4 deadline
	shift 4
	deadline=$((SECONDS + timeout))
	until "$@"; do
		if ! alive "$pid"; then
			show_log "$log"
			die "$name exited during start-up"
		fi
		if ((SECONDS >= deadline)); then
			show_log "$log"
			die "$name not ready after ${timeout}s"
		fi
		sleep 0.2
	done
}

if [[ -z "${KAFKA_BROKERS:-}" ]]; then
	say "starting limen-broker on $LIMEN_KAFKA_ADDR"
	start_child limen-broker "$LOGS/limen-broker.log" "$BIN/limen-broker" -addr "$LIMEN_KAFKA_ADDR"
	wait_until limen-broker "$LAST_PID" 15 "$LOGS/limen-broker.log" port_busy "$LIMEN_KAFKA_ADDR"
	export KAFKA_BROKERS=$LIMEN_KAFKA_ADDR
else
	say "using KAFKA_BROKERS=$KAFKA_BROKERS"
fi

# ---- libvirtd --------------------------------------------------------------------------------------
libvirt_answers() { virsh -c qemu:///system version >/dev/null 2>&1; }
# daemon_pid PIDFILE NAME — the pid in PIDFILE, if that process is alive and called NAME.
daemon_pid() {
	local pid
	[[ -s "$1" ]] || return 1
	pid=$(<"$1")
	[[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]] && echo "$pid"
}

if [[ "$LIMEN_START_LIBVIRTD" == 1 ]] && command -v virsh >/dev/null 2>&1; then
	if libvirt_answers; then
		say "libvirtd already running; using it"
	elif ! is_root; then
		say "warning: libvirtd is not answering on qemu:///system and we are not root; VM features will be unavailable"
	elif ! command -v libvirtd >/dev/null 2>&1; then
		say "warning: libvirtd not installed (run deployments/local/ensure-deps.sh); VM features will be unavailable"
	else
		say "starting libvirtd"
		mkdir -p /var/log/libvirt/qemu /var/run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt
		if ! daemon_pid /var/run/virtlogd.pid virtlogd >/dev/null; then
			virtlogd -d
			for _ in $(seq 50); do
				VIRTLOGD_STARTED_PID=$(daemon_pid /var/run/virtlogd.pid virtlogd) && break
				sleep 0.1
			done
		fi
		libvirtd -d
		for _ in $(seq 100); do
			libvirt_answers && break
			sleep 0.1
		done
		LIBVIRTD_STARTED_PID=$(daemon_pid /var/run/libvirtd.pid libvirtd) || true
		libvirt_answers || say "warning: libvirtd did not answer within 10 s (see /var/log/libvirt); VM features will be unavailable"
	fi
fi

# ---- services --------------------------------------------------------------------------------------
for entry in "${SERVICES[@]}"; do
	IFS='|' read -r name addr _ <<<"$entry"
	skip=skip_${name//-/_}
	if declare -F "$skip" >/dev/null && why=$("$skip"); then
		say "warning: not starting $name: $why; its routes answer 503"
		continue
	fi
	envs=("LISTEN_ADDR=$addr")
	fn=env_${name//-/_}
	if declare -F "$fn" >/dev/null; then
		while IFS= read -r line; do envs+=("$line"); done < <("$fn")
	fi
	say "starting $name on $addr"
	start_child "$name" "$LOGS/$name.log" env "${envs[@]}" "$BIN/$name"
	if [[ "$name" == gateway ]]; then
		ready=http://$addr/api/health
		timeout=$LIMEN_HEALTH_TIMEOUT
	else
		ready=http://$addr/readyz
		timeout=60
	fi
	wait_until "$name" "$LAST_PID" "$timeout" "$LOGS/$name.log" http_ok "$ready"
	# Later services find this one by URL.
	url_var=$(tr 'a-z-' 'A-Z_' <<<"$name")_URL
	export "$url_var=http://$addr"
done

cat >&2 <<EOF

  LIMEN is up:  http://$LIMEN_GATEWAY_ADDR   (health: http://$LIMEN_GATEWAY_ADDR/api/health)
  admin login:  username '$LIMEN_ADMIN_USERNAME'  password '$LIMEN_ADMIN_PASSWORD'
  logs:         $LOGS/
  Ctrl-C stops everything started here.

EOF

# ---- supervise -------------------------------------------------------------------------------------
pids=()
for entry in "${STARTED_PIDS[@]}"; do
	IFS='|' read -r _ pid _ <<<"$entry"
	pids+=("$pid")
done
rc=0
wait -n -p dead "${pids[@]}" || rc=$?
# A signal makes wait return and runs its trap (which exits) first; reaching here means a child ended.
for entry in "${STARTED_PIDS[@]}"; do
	IFS='|' read -r name pid log <<<"$entry"
	if [[ "$pid" == "${dead:-}" ]]; then
		say "$name exited unexpectedly (status $rc); stopping everything"
		show_log "$log"
	fi
done
cleanup
exit $((rc == 0 ? 1 : rc))
