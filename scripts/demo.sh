#!/usr/bin/env bash
# The main job: a 3-host lab on this machine (network namespaces on one bridge, etcd and
# a manager on the first host, an agent on each), a demo web service with 3 replicas,
# scaled to 5, its tasks shown, and a page fetched from a replica. Idempotent: an
# existing demo lab is taken down and built again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

if [[ -e /var/lib/pyswarm-lab/pslab/lab.json ]]; then
    echo "demo: taking the previous lab down"
    pyswarm lab down
fi

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step pyswarm lab up --nodes 3
step pyswarm node ls
step pyswarm service create --name web --replicas 3 -p 8080:80 busybox httpd -f -p 80 -h /var/www
step pyswarm service scale web=5
step pyswarm service ps web
step pyswarm service ls

address=$(pyswarm node ls --format json | python3 -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin]; print(sorted(rows, key=lambda r: r["Hostname"])[1]["Address"])')
echo
echo "demo: fetching http://$address:8080/ (a replica on node-2, through its published port)"
python3 -c "import urllib.request as u; print('demo: the page says:', u.urlopen('http://$address:8080/', timeout=5).read().decode().strip())"

cat <<'TXT'

Try:  pyswarm service scale web=50     pyswarm node update --availability drain node-2
      pyswarm lab exec node-1 -- ip addr   pyswarm lab status
Done: pyswarm lab down
TXT
