#!/usr/bin/env bash
# Make this host a pyswarm node under systemd (after deploy/install.sh):
#
#   pyswarm-node init ADVERTISE_ADDR [init flags...]
#       a manager (pyswarm-manager.service, with its embedded etcd), and this host's
#       agent joined to it
#   pyswarm-node join ADVERTISE_ADDR MANAGER:4243 [join flags...]
#       this host's agent joined to a cluster; the worker token on stdin or in
#       $PYSWARM_JOIN_TOKEN (never an argument, which every local user sees)
#
# The join runs once as the agent unit itself, through a drop-in kept under /run (a
# tmpfs, so the token never reaches a disk); once joined, the drop-in goes and every
# later start of pyswarm-agent.service (a restart, a reboot) is the plain `pyswarm agent`,
# which finds the cluster in its state dir.
set -euo pipefail
pyswarm=/opt/pyswarm/.venv/bin/pyswarm
state_dir=/var/lib/pyswarm
manager_dir=/var/lib/pyswarm-manager
dropin_dir=/run/systemd/system/pyswarm-agent.service.d
token_dir=/run/pyswarm-join
timeout=${PYSWARM_NODE_TIMEOUT:-300}

say() { echo "pyswarm-node: $*" >&2; }

wait_for() { # WHAT COMMAND... : until COMMAND succeeds, at most $timeout seconds
    local what=$1 deadline=$((SECONDS + timeout))
    shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            say "timed out waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

forget_token() {
    rm -rf "$dropin_dir/join.conf" "$token_dir"
    systemctl daemon-reload
}

join() {
    (($# >= 2)) || { say "usage: pyswarm-node join ADVERTISE_ADDR MANAGER:PORT [join flags]"; exit 2; }
    local addr=$1 manager=$2 token=${PYSWARM_JOIN_TOKEN:-}
    shift 2
    [[ -n $token ]] || read -r token || true
    [[ -n $token ]] || { say "no join token: give it on stdin or in \$PYSWARM_JOIN_TOKEN"; exit 2; }
    if [[ -f $state_dir/cluster/cluster.json ]]; then
        say "this host has joined a cluster already; (re)starting its agent"
        systemctl restart pyswarm-agent.service
        return
    fi
    install -d -m 0700 "$token_dir"
    (umask 077 && printf 'PYSWARM_JOIN_TOKEN=%s\n' "$token" >"$token_dir/token.env")
    mkdir -p "$dropin_dir"
    cat >"$dropin_dir/join.conf" <<CONF
[Service]
EnvironmentFile=$token_dir/token.env
ExecStart=
ExecStart=$pyswarm join --advertise-addr $addr --state-dir $state_dir --socket /run/pyswarm/agent.sock $* $manager
CONF
    systemctl daemon-reload
    systemctl restart pyswarm-agent.service
    if ! wait_for "the agent to join $manager" test -f "$state_dir/cluster/cluster.json"; then
        journalctl -u pyswarm-agent.service -n 5 --no-pager -o cat >&2 || true
        forget_token
        exit 1
    fi
    forget_token
    say "joined $manager as $addr"
}

init() {
    (($# >= 1)) || { say "usage: pyswarm-node init ADVERTISE_ADDR [init flags]"; exit 2; }
    local addr=$1
    shift
    install -d -m 0700 /etc/pyswarm
    printf 'PYSWARM_INIT_FLAGS=--advertise-addr %s %s\n' "$addr" "$*" >/etc/pyswarm/manager.env
    systemctl enable pyswarm-manager.service
    systemctl restart pyswarm-manager.service
    wait_for "the manager" test -f "$manager_dir/manager.json"
    # One CLI call per try, kept when it answers: a Python start is seconds on a slow VM.
    local token="" deadline=$((SECONDS + timeout))
    until token=$("$pyswarm" join-token -q worker 2>/dev/null) && [[ -n $token ]]; do
        if ((SECONDS >= deadline)); then
            say "timed out waiting for a worker join token"
            exit 1
        fi
        sleep 0.5
    done
    PYSWARM_JOIN_TOKEN=$token join "$addr" "$addr:4243"
}

case ${1:-} in
init | join)
    command=$1
    shift
    "$command" "$@"
    ;;
*)
    say "usage: pyswarm-node init ADVERTISE_ADDR | join ADVERTISE_ADDR MANAGER:PORT"
    exit 2
    ;;
esac
