#!/usr/bin/env bash
# Install everything pyswarm needs on a Debian 12 machine, idempotently:
# the Debian packages that serve as real parts, and a venv (.venv) with pyswarm.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(etcd-server busybox-static iproute2 iptables iputils-ping runc crun python3-venv docker-registry
    prometheus qemu-system-x86 qemu-utils debootstrap e2fsprogs) # the last four: the VM lab (lab up --vms)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv is rebuilt only when pyproject.toml changed since the last install.
stamp=.venv/.pyswarm-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setup: installing pyswarm into .venv"
    python3 -m venv .venv
    log=$(mktemp)
    if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    rm -f "$log"
    echo "$want" > "$stamp"
fi
