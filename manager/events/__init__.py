"""`pyswarm events`: what happened to the cluster's objects, from the store's watch.

- kinds.py: which stored kinds make events and what each event says (one line per kind);
- tasks.py: task events and the container start/die events read from them;
- matching.py: `--filter` (type, event, service, node, network, secret, config, ...);
- clock.py: when each etcd revision happened (for `--since` and removals' times);
- feed.py: one etcd watch per stream, replay and live, ended by `--until`.
"""

from pyswarm.manager.events.clock import RevisionClock
from pyswarm.manager.events.feed import EventFeed
from pyswarm.manager.events.kinds import EVENT_KINDS, EVENT_TYPES, EventKind
from pyswarm.manager.events.matching import EVENT_FILTER_KEYS, EventFilter

__all__ = [
    "EVENT_FILTER_KEYS",
    "EVENT_KINDS",
    "EVENT_TYPES",
    "EventFeed",
    "EventFilter",
    "EventKind",
    "RevisionClock",
]
