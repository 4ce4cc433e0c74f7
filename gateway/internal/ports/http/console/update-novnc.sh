#!/usr/bin/env bash
# update-novnc.sh [version] — replace the embedded noVNC (./novnc) with the npm package @novnc/novnc
# at that version (default: latest). The gateway embeds ./novnc as it is at build time (go:embed in
# ../consolepage.go) and serves it under /console/assets/novnc/; rebuild the gateway afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
version=${1:-latest}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@novnc/novnc@$version" >/dev/null && tar xzf novnc-novnc-*.tgz)
rm -rf novnc
mkdir -p novnc/docs
cp -r "$work/package/core" "$work/package/vendor" "$work/package/LICENSE.txt" "$work/package/AUTHORS" \
	"$work/package/package.json" novnc/
cp "$work/package/docs/"LICENSE* novnc/docs/
echo "noVNC $(sed -n 's/^  "version": "\(.*\)",$/\1/p' novnc/package.json) in $(pwd)/novnc"
