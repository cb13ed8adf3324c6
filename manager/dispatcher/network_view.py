"""The NetworkView one agent session is sent: whole, on connect and on every change.

The view is rebuilt from the cache (manager/network/view.py) after each debounced
burst of events of the kinds it depends on, and sent only when it differs from the
last one sent on this session. Task events that leave every part of the task a view
reads unchanged (`task_view_key`: a task on no network, a status moving from ACCEPTED
to STARTING) rebuild nothing: a scale to a thousand replicas would otherwise rebuild
every session's view, a walk of every task, for each burst of status reports.

Its version is the cache revision it was built at: etcd revisions only grow, across
managers too, so an agent never mistakes an older view for a newer one after a failover.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.manager.network.keys import KEYS_ID
from pyswarm.manager.network.view import TaskViewKey, build_view, task_view_key
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
from pyswarm.proto import dispatcher_pb2, types_pb2

#: The kinds whose changes can change a node's view.
VIEW_KINDS = (NETWORKS, TASKS, SERVICES, NODES, NETWORK_KEYS, ATTACHMENTS)
_VIEW_KIND_NAMES = frozenset(kind.name for kind in VIEW_KINDS)


class NetworkViewTracker:
    """The view last sent to one node, and whether a new one is due."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._sent: bytes | None = None
        self._task_keys: dict[str, TaskViewKey] = {}  # of the tasks that have one

    def current(self, cache: Cache) -> dispatcher_pb2.NetworkView:
        # build_view only reads (it copies what it puts in the view): no copies needed.
        tasks = cache.view(TASKS)
        self._task_keys = {t.id: key for t in tasks if (key := task_view_key(t)) is not None}
        return build_view(
            self.node_id,
            networks=cache.view(NETWORKS),
            tasks=tasks,
            services=cache.view(SERVICES),
            nodes=cache.view(NODES),
            version=cache.revision,
            keys=cache.get(NETWORK_KEYS, KEYS_ID),
            attachments=cache.view(ATTACHMENTS),
        )

    def complete(self, cache: Cache) -> dispatcher_pb2.NetworkView:
        """The view to send on connect (always sent)."""
        view = self.current(cache)
        self._sent = _content(view)
        return view

    def _matters(self, event: StoreEvent) -> bool:
        if event.resync:
            return True
        if event.kind != TASKS.name:
            return event.kind in _VIEW_KIND_NAMES
        task = event.message
        key = task_view_key(task) if isinstance(task, types_pb2.Task) else None
        if key == self._task_keys.get(event.id):
            return False
        if key is None:
            del self._task_keys[event.id]
        else:
            self._task_keys[event.id] = key
        return True

    def changed(
        self, cache: Cache, events: Iterable[StoreEvent]
    ) -> dispatcher_pb2.NetworkView | None:
        """A new view if these events changed this node's; None otherwise."""
        if not [event for event in events if self._matters(event)]:  # every key kept
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
