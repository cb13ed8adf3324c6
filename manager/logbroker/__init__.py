"""Logs of a service's tasks from every node (`service logs`), in SwarmKit's LogBroker shape.

The flow, with several managers:

1. The CLI calls Control.ServiceLogs on any manager M. M resolves the service (or task),
   makes a `LogSubscription` (selector, follow/tail/since, `publisher` = M's advertised
   address) and stores it in etcd under a lease M keeps alive while the CLI is there.
2. Every manager follows the subscriptions in etcd with one watch (`SubscriptionFeed`)
   and streams them to each agent in session with it (LogBroker.ListenSubscriptions,
   opened by the agent beside its Dispatcher session: managers never dial agents).
3. An agent with containers of the selected tasks dials M (the subscription says where)
   and streams their lines up (LogBroker.PublishLogs), then `close` without follow.
4. M routes the lines to its caller, naming each line's node by the publisher's
   certificate. Without follow the call ends when every node holding a selected task
   has closed; a node that is down (not READY, or its session lapsed) or silent is a
   warning line, not a hang. The caller going away (Ctrl-C) ends the subscription: M
   revokes the lease, the key's deletion reaches the agents as `close`, and M ends
   their PublishLogs streams. If M dies, the lease runs out and the same happens.

- subscriptions.py: subscriptions stored in etcd under a lease, followed by every manager.
- feed.py: `SubscriptionFeed`, one watch of them per manager, fanned out to its agents.
- broker.py: `LogBroker`, one subscription per caller and the routing of published logs.
- service.py: `LogBrokerService`, the agents' side (ListenSubscriptions, PublishLogs).

The Control side (`ServiceLogs`) is manager/controlapi/logs.py; the agent's side is
agent/cluster/log_publisher.py.
"""

from pyswarm.manager.logbroker.broker import LogBroker
from pyswarm.manager.logbroker.service import LogBrokerService

__all__ = ["LogBroker", "LogBrokerService"]
