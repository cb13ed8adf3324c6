#!/usr/bin/env bash
# The main job: a 3-host lab on this machine (network namespaces on one bridge, etcd and
# a manager on the first host, an agent on each, and a registry), the demo web image
# built from demo/web/Dockerfile on node-1 and pushed to the lab's registry, a service of
# it with 3 replicas (each host pulls only the layers it lacks), scaled to 5 and back to
# 2, its tasks shown, and a page fetched through a host that runs no replica (the
# routing mesh carries it to a replica on another host), then the multi-tier stack demo
# (demo/stack.yml) on the three hosts. Idempotent: an existing demo lab is taken down and
# built again.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "demo.sh: run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

if [[ -e /var/lib/pyswarm-lab/pslab/lab.json ]]; then
    echo "demo: taking the previous lab down"
    pyswarm lab down
fi

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step pyswarm lab up --nodes 3 --registry
step pyswarm node ls

registry=$(python3 -c 'import json; print(json.load(open("/var/lib/pyswarm-lab/pslab/lab.json"))["registry_addr"])')
node1="/run/pyswarm-lab/pslab/node-1/agent.sock"
image="$registry/demo/web:1"
step pyswarm --socket "$node1" image build -t "$image" demo/web
step pyswarm --socket "$node1" push "$image"
step pyswarm service create --name web --replicas 3 -p 8080:80 "$image"
step pyswarm service scale web=5
step pyswarm service scale web=2
step pyswarm service ps web
step pyswarm service ls

# The host that runs no replica of web, from `service ps`, and its address.
busy=$(pyswarm service ps web --format json | python3 -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin if l.strip()]; print(" ".join(r["Node"] for r in rows if r["DesiredState"] == "Running" and r["CurrentState"].startswith("Running")))')
read -r idle address < <(pyswarm node ls --format json | python3 -c 'import json,sys; busy=set(sys.argv[1].split()); rows=[json.loads(l) for l in sys.stdin if l.strip()]; idle=sorted((r for r in rows if r["Hostname"] not in busy), key=lambda r: r["Hostname"]); print(idle[0]["Hostname"], idle[0]["Address"])' "$busy")
echo
echo "demo: fetching http://$address:8080/ from $idle, which runs no replica of web (replicas on: $busy): the routing mesh carries it to one"
python3 -c "import urllib.request as u; o=u.build_opener(u.ProxyHandler({})); print('demo: the page says:', o.open('http://$address:8080/', timeout=5).read().decode().strip())"

# The stack demo: the same image as a front end, a queue, a worker and a store, spread
# over the three hosts, talking by service name; an order goes through all four.
step env DEMO_IMAGE="$image" pyswarm stack deploy -c demo/stack.yml demo
step pyswarm stack ps demo
python3 -c "import urllib.request as u; o=u.build_opener(u.ProxyHandler({})); print(o.open('http://$address:8081/cgi-bin/status?order=demo', timeout=5).read().decode())"

cat <<'TXT'

Try:  pyswarm service scale web=50     pyswarm node update --availability drain node-2
      pyswarm service inspect --pretty web   (the image pinned to its digest)
      pyswarm lab exec node-1 -- ip addr   pyswarm lab status
      pyswarm stack services demo          pyswarm service logs demo_worker
Done: pyswarm lab down
TXT
