#!/usr/bin/env bash
# Install pyswarm on a fresh Debian 12 host, idempotently: the Debian packages it runs
# with, pyswarm from a wheel into a venv under /opt/pyswarm, its systemd units and its
# state dirs. The agent is enabled (and started on a running system, standalone until the
# host joins); then `pyswarm-node init ADDR` or `pyswarm-node join ADDR MANAGER:4243`.
#
#   install.sh --wheel dist/pyswarm-VERSION-py3-none-any.whl [--wheelhouse DIR]
#   install.sh --print-packages        the Debian packages, one a line (the VM lab bakes them in)
#
# --wheelhouse DIR installs offline: pyswarm's dependencies come from DIR's wheels only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

packages=(python3 python3-venv etcd-server iproute2 iptables kmod busybox-static procps)
prefix=/opt/pyswarm
venv=$prefix/.venv

wheel="" wheelhouse=""
while (($#)); do
    case $1 in
    --wheel) wheel=$2; shift 2 ;;
    --wheelhouse) wheelhouse=$2; shift 2 ;;
    --print-packages) printf '%s\n' "${packages[@]}"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
    esac
done
[[ $EUID -eq 0 ]] || { echo "install.sh: run as root" >&2; exit 1; }
[[ -f $wheel ]] || { echo "install.sh: --wheel FILE: no pyswarm wheel at '$wheel'" >&2; exit 2; }

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
index=()
[[ -z $wheelhouse ]] || index=(--no-index --find-links "$wheelhouse")
log=$(mktemp)
# The second install replaces pyswarm even when the version did not change (a rebuilt
# wheel of the same version is still a new pyswarm).
if ! { "$venv/bin/pip" install -q --disable-pip-version-check "${index[@]}" "$wheel" &&
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
fi
rm -f "$log"
ln -sfn "$venv/bin/pyswarm" /usr/local/bin/pyswarm
install -m 0755 "$here/pyswarm-node.sh" /usr/local/sbin/pyswarm-node

install -d -m 0700 /var/lib/pyswarm /var/lib/pyswarm-manager /etc/pyswarm
for unit in pyswarm-agent.service pyswarm-manager.service; do
    install -m 0644 "$here/systemd/$unit" "/etc/systemd/system/$unit"
done
# Debian's etcd-server starts a plain-http etcd of its own; pyswarm's manager runs its
# own etcd (TLS with client certificates) from the same binary, so that unit stays off.
if [[ -d /run/systemd/system ]]; then # a running system (not a chroot or an image build)
    systemctl disable --now etcd.service 2>/dev/null || true
    systemctl daemon-reload
    systemctl enable --now pyswarm-agent.service
else
    systemctl disable etcd.service 2>/dev/null || true
    systemctl enable pyswarm-agent.service
fi
echo "install.sh: pyswarm $("$venv/bin/pip" show pyswarm 2>/dev/null | sed -n 's/^Version: //p') installed in $venv"
