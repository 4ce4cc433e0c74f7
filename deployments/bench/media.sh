#!/usr/bin/env bash
# Media benchmark on the real local stack: attach/eject through the gateway against raw go-libvirt
# DomainUpdateDeviceFlags on the same running guest (medians and their ratio), BENCH_SWAPS (100)
# back-to-back swaps with their failures, and the RSS of the gateway and media-service while a
# BENCH_UPLOAD_MIB (1024) MiB ISO streams through them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=deployments/bench/lib.sh
source deployments/bench/lib.sh
SWAPS=${BENCH_SWAPS:-100}
UPLOAD_MIB=${BENCH_UPLOAD_MIB:-1024}

start_stack media
go build -o "$DIR/mediabench" ./deployments/bench/mediabench
ISOS=$DIR/data/isos
for name in first second; do
	mkdir -p "$DIR/src-$name" && echo "$name" >"$DIR/src-$name/readme.txt"
	genisoimage -quiet -o "$ISOS/$name.iso" -V "$name" -J -r "$DIR/src-$name"
done
VM=$(curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"media bench","cpu":1,"memory":64,"os_type":"other","start":true}' \
	"http://$GATEWAY/api/vms" | json_field uuid)
pid_of() { pgrep -f "^$DIR/data/bin/$1\$" | head -n 1; }
"$DIR/mediabench" -gateway "http://$GATEWAY" -token "$TOKEN" -vm "$VM" -isos "$ISOS/first.iso,$ISOS/second.iso" \
	-n "$SWAPS" -upload $((UPLOAD_MIB << 20)) -pids "gateway=$(pid_of gateway),media-service=$(pid_of media-service)"
curl -fs -X DELETE -H "Authorization: Bearer $TOKEN" "http://$GATEWAY/api/vms/$VM" >/dev/null
