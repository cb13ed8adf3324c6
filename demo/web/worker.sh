#!/bin/sh
# The stack demo's worker (service "worker"): moves orders from the queue to the store,
# authenticating with the secret store_token.
token=$(cat /run/secrets/store_token)
while true; do
    item=$(wget -q -O- http://queue/cgi-bin/queue?pop)
    if [ -n "$item" ]; then
        echo "$item: $(wget -q -O- "http://store/cgi-bin/store?add=$token:$item")"
    else
        sleep 1
    fi
done
