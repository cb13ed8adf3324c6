#!/usr/bin/env bash
# The single-host demo: start the agent, make a busybox image, run busybox httpd
# as a container with a published port, fetch a page through it, show `container ps`.
# Idempotent: a second run replaces the demo container.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "demo-node.sh: run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

state=/var/lib/pyswarm
socket=/run/pyswarm/agent.sock
mkdir -p /run/pyswarm "$state"
if ! pyswarm ps >/dev/null 2>&1; then
    echo "demo: starting the agent (log: $state/agent.log)"
    setsid pyswarm agent --state-dir "$state" --socket "$socket" >>"$state/agent.log" 2>&1 < /dev/null &
    for _ in $(seq 1 100); do
        pyswarm ps >/dev/null 2>&1 && break
        sleep 0.1
    done
    pyswarm ps >/dev/null
fi

if ! pyswarm image inspect busybox:latest >/dev/null 2>&1; then
    echo "demo: making the busybox image from the host's busybox-static"
    pyswarm image busybox busybox:latest
fi

pyswarm rm -f demo-web >/dev/null 2>&1 || true
echo "demo: pyswarm run -d --name demo-web -p 8080:80 busybox httpd -f -p 80 -h /var/www"
pyswarm run -d --name demo-web -p 8080:80 busybox httpd -f -p 80 -h /var/www

echo "demo: fetching http://127.0.0.1:8080/ through the published port"
for _ in $(seq 1 50); do
    if page=$(python3 -c 'import urllib.request as u; print(u.urlopen("http://127.0.0.1:8080/", timeout=2).read().decode().strip())' 2>/dev/null); then
        break
    fi
    sleep 0.1
done
echo "demo: the page says: ${page:?the page could not be fetched}"

echo
pyswarm container ps
echo
echo "Try: pyswarm logs demo-web | pyswarm exec -it demo-web sh | pyswarm images | pyswarm system df"
echo "Clean up: pyswarm rm -f demo-web; pyswarm agent --teardown  (then stop the agent)"
