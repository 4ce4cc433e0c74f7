#!/usr/bin/env bash
# ensure-deps.sh — make sure the host has what `make run` and `make test` need.
#
# Idempotent and fast when everything is present. On Debian/Ubuntu, as root, it installs what is
# missing with apt (running `apt-get update` once, only when an install is needed):
#   - PostgreSQL, when no initdb/pg_ctl is found in PATH or /usr/lib/postgresql/*/bin;
#   - libvirt + QEMU (+ genisoimage), when libvirtd is missing;
#   - with CI=true (what CI runs make test with), Chromium, for the console page's test in a browser
#     (gateway/internal/e2e); without it that test is skipped.
# It then prepares libvirtd for hosts without systemd (directories, the libvirt-qemu user, and
# /etc/libvirt/qemu.conf when it is absent or lacks the settings below). An existing qemu.conf is only
# ever appended to (never rewritten), and only for keys it does not set, and only when systemd is not
# PID 1 (a host with systemd runs its own, already configured libvirtd).
#
# Not root, or not Debian: it reports what is missing and how to install it, and carries on.
#
# Env: LIMEN_SKIP_DEPS=1 skips everything.
set -euo pipefail

[[ "${LIMEN_SKIP_DEPS:-0}" == 1 ]] && exit 0

log() { printf 'ensure-deps: %s\n' "$*" >&2; }

is_root() { [[ "$(id -u)" == 0 ]]; }

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; }

have_postgres() {
	if have initdb && have pg_ctl; then return 0; fi
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && return 0
	done
	return 1
}

have_libvirt() {
	have libvirtd && have virtlogd && have virsh && have qemu-system-x86_64 && have qemu-img && have genisoimage
}

# --- packages -----------------------------------------------------------------------------------
packages=()
have_postgres || packages+=(postgresql)
have_libvirt || packages+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils genisoimage)
if [[ "${CI:-}" == true ]] && ! have chromium; then packages+=(chromium); fi

if ((${#packages[@]} > 0)); then
	if ! command -v apt-get >/dev/null 2>&1; then
		log "missing: ${packages[*]} — no apt-get here; install PostgreSQL 15+ and libvirt/QEMU with your package manager"
	elif ! is_root; then
		log "missing: ${packages[*]} — run as root: apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
	else
		log "installing: ${packages[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
	fi
fi

# --- libvirtd without systemd -------------------------------------------------------------------
# Only meaningful when libvirtd is installed and we may change the host.
if ! have libvirtd || ! is_root; then
	exit 0
fi

mkdir -p /var/log/libvirt/qemu /var/run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt

# libvirtd refuses to start without this user, even when qemu.conf runs guests as root.
if ! id -u libvirt-qemu >/dev/null 2>&1; then
	log "creating system user libvirt-qemu"
	useradd --system --no-create-home --shell /usr/sbin/nologin libvirt-qemu
fi

# Settings that make QEMU guests start under a libvirtd that has no systemd, cgroups or namespaces.
qemu_conf=/etc/libvirt/qemu.conf
qemu_settings=(
	'user = "root"'
	'group = "root"'
	'security_driver = "none"'
	'cgroup_controllers = [ ]'
	'namespaces = [ ]'
)
marker='# Added by LIMEN deployments/local/ensure-deps.sh (libvirtd without systemd)'

systemd_is_init() { [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; }

if [[ ! -e "$qemu_conf" ]]; then
	log "writing $qemu_conf"
	mkdir -p "$(dirname "$qemu_conf")"
	{
		echo "$marker"
		printf '%s\n' "${qemu_settings[@]}"
	} >"$qemu_conf"
else
	# Keys the file does not set (ignoring comments).
	missing=()
	for s in "${qemu_settings[@]}"; do
		key=${s%% =*}
		grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$qemu_conf" || missing+=("$s")
	done
	if ((${#missing[@]} > 0)); then
		if systemd_is_init; then
			log "note: $qemu_conf does not set: ${missing[*]} — left alone (systemd host; its libvirtd is configured by the distribution)"
		else
			log "appending to $qemu_conf: ${missing[*]}"
			{
				echo
				echo "$marker"
				printf '%s\n' "${missing[@]}"
			} >>"$qemu_conf"
			if [[ -S /var/run/libvirt/libvirt-sock ]]; then
				log "note: restart libvirtd for the qemu.conf change to take effect"
			fi
		fi
	fi
fi
