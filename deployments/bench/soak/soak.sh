#!/usr/bin/env bash
# soak.sh — `make soak`: the whole local stack under load while its parts are killed and restarted in
# turn (services, broker, libvirtd, Postgres), then a check that nothing was lost, duplicated or left
# behind. A bounded run: SOAK_DURATION (10m) of load and faults, then SOAK_SETTLE (60s) of quiet and
# the checks. Prints the counts; exits 1 on a mismatch or a service that crashed or did not recover.
# The settings (SOAK_USERS, SOAK_MAX_VMS, SOAK_FAULT_EVERY, SOAK_FAULTS, SOAK_PG_STOP, ...) are
# described in main.go beside this script. Needs root (a private libvirtd, Postgres as postgres).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
if [[ "$(id -u)" != 0 ]]; then
	echo "soak.sh: run as root (a private libvirtd under its own user, Postgres as the postgres user)" >&2
	exit 2
fi
bash deployments/local/ensure-deps.sh # PostgreSQL, libvirt/QEMU and genisoimage, as make run has them
BIN=$(mktemp -d /tmp/limen-soak-bin.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/soak" ./deployments/bench/soak
"$BIN/soak"
