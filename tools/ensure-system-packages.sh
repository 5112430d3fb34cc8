#!/usr/bin/env bash
# Installs the Debian packages the test suite needs and that are not already present.
# Idempotent: a second run installs nothing. Needs root (CI and dev machines run as root).
#
#   prometheus  -> /usr/bin/prometheus and /usr/bin/promtool (alert rule tests, metric lint,
#                  the dashboard/rule query test against a real Prometheus)
set -euo pipefail

# command -> Debian package that provides it
declare -A NEEDED=(
    [promtool]=prometheus
    [prometheus]=prometheus
)

missing=()
for cmd in "${!NEEDED[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        pkg="${NEEDED[$cmd]}"
        [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-system-packages: need root to install: ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The package's maintainer scripts must not start a system-wide Prometheus on :9090; the
# suite runs its own on free ports. policy-rc.d exit 101 = "do not start services".
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

# Wait for another apt/dpkg run (e.g. a parallel `make install`) instead of failing at once.
APT=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
# Update the package lists only when they are missing or the install cannot find a package.
if ! "${APT[@]}" install --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    "${APT[@]}" update
    "${APT[@]}" install --no-install-recommends "${missing[@]}"
fi

for cmd in "${!NEEDED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || {
        echo "ensure-system-packages: $cmd still missing after installing ${missing[*]}" >&2
        exit 1
    }
done
echo "ensure-system-packages: installed ${missing[*]}"
