"""The NetworkView one agent session is sent: whole, on connect and on every change.

The view is rebuilt from the cache (manager/network/view.py) after each debounced
burst of events of the kinds it depends on, and sent only when it differs from the
last one sent on this session. Its version is the cache revision it was built at: etcd
revisions only grow, across managers too, so an agent never mistakes an older view
for a newer one after a failover.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.network.keys import KEYS_ID
from pyswarm.manager.network.view import build_view
from pyswarm.manager.store import (
    ATTACHMENTS,
    NETWORK_KEYS,
    NETWORKS,
    NODES,
    SERVICES,
    TASKS,
    Cache,
    StoreEvent,
)
from pyswarm.proto import dispatcher_pb2

#: The kinds whose changes can change a node's view.
VIEW_KINDS = (NETWORKS, TASKS, SERVICES, NODES, NETWORK_KEYS, ATTACHMENTS)
_VIEW_KIND_NAMES = frozenset(kind.name for kind in VIEW_KINDS)


class NetworkViewTracker:
    """The view last sent to one node, and whether a new one is due."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._sent: bytes | None = None

    def current(self, cache: Cache) -> dispatcher_pb2.NetworkView:
        return build_view(
            self.node_id,
            networks=cache.list(NETWORKS),
            tasks=cache.list(TASKS),
            services=cache.list(SERVICES),
            nodes=cache.list(NODES),
            version=cache.revision,
            keys=cache.get(NETWORK_KEYS, KEYS_ID),
            attachments=cache.list(ATTACHMENTS),
        )

    def complete(self, cache: Cache) -> dispatcher_pb2.NetworkView:
        """The view to send on connect (always sent)."""
        view = self.current(cache)
        self._sent = _content(view)
        return view

    def changed(
        self, cache: Cache, events: Iterable[StoreEvent]
    ) -> dispatcher_pb2.NetworkView | None:
        """A new view if these events changed this node's; None otherwise."""
        if not any(event.resync or event.kind in _VIEW_KIND_NAMES for event in events):
            return None
        view = self.current(cache)
        content = _content(view)
        if content == self._sent:
            return None
        self._sent = content
        return view


def _content(view: dispatcher_pb2.NetworkView) -> bytes:
    copy = dispatcher_pb2.NetworkView()
    copy.CopyFrom(view)
    copy.version = 0
    return copy.SerializeToString(deterministic=True)
