"""Node health: a node whose heartbeats stopped is DOWN, and its tasks are replaced;
a drained node's tasks are shut down and replaced.

Liveness is a `NodeLiveness` record bound to an etcd lease that every heartbeat
refreshes (see the dispatcher), so any manager's dispatcher keeps it and etcd deletes
it three heartbeat periods after the last one. Keys here are node ids; a node is
dirty when it, its liveness record, or a task still wanted on it changes.

- READY without liveness -> DOWN ("heartbeat failure"). When this manager has just
  become leader, a READY node gets one heartbeat deadline of grace first (its agent
  may be reconnecting to the new leader).
- DOWN (or removed): each task still wanted there gets desired SHUTDOWN and, if it had
  not ended, state ORPHANED, so the orchestrators replace it elsewhere.
- DRAIN: each task still wanted there gets desired SHUTDOWN (the agent stops it).
"""

from __future__ import annotations

from pyswarm.manager.orchestrator.index import TaskIndex, copy_task
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.store import LIVENESS, NODES, TASKS, Op, StoreEvent, Update
from pyswarm.proto import types_pb2

NodeStatus = types_pb2.NodeStatus
HEARTBEAT_FAILURE = "heartbeat failure"


def _wanted(task: types_pb2.Task) -> bool:
    return task.desired_state <= types_pb2.RUNNING


class NodeHealth(ReconcileLoop):
    name = "node_health"
    kinds = (NODES, LIVENESS, TASKS)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()
        self._grace_until: dict[str, float] = {}

    def prime(self) -> None:
        self.tasks.load(self.cache.list(TASKS))
        deadline = self.clock() + self.config.heartbeat_deadline
        for node in self.cache.list(NODES):
            if node.status.state == NodeStatus.READY:
                self._grace_until[node.id] = deadline
            self.mark(node.id)
        self.mark_all(self.tasks.by_node)

    def observe(self, event: StoreEvent) -> None:
        if event.kind == TASKS.name:
            _, task = self.tasks.apply(event)
            if task is not None and task.node_id and _wanted(task):
                node = self.cache.get(NODES, task.node_id)
                if node is None or not self._healthy_and_active(node):
                    self.mark(task.node_id)
            return
        if event.kind == LIVENESS.name and event.message is not None:
            self._grace_until.pop(event.id, None)
        self.mark(event.id)

    @staticmethod
    def _healthy_and_active(node: types_pb2.Node) -> bool:
        return (
            node.status.state != NodeStatus.DOWN
            and node.spec.availability != types_pb2.NodeSpec.DRAIN
        )

    async def reconcile(self, keys: set[str]) -> None:
        ops: list[Op] = []
        now = self.clock()
        for node_id in sorted(keys):
            node = self.cache.get(NODES, node_id)
            ready = node is not None and node.status.state == NodeStatus.READY
            if node is not None and ready and self.cache.get(LIVENESS, node_id) is None:
                grace = self._grace_until.get(node_id, 0.0)
                if now < grace:
                    self.wake_at(node_id, grace)
                    continue
                node.status.state = NodeStatus.DOWN
                node.status.message = HEARTBEAT_FAILURE
                ops.append(Update(NODES, node))
            down = node is None or node.status.state == NodeStatus.DOWN
            drain = node is not None and node.spec.availability == types_pb2.NodeSpec.DRAIN
            if not (down or drain):
                continue
            for task in self.tasks.on_node(node_id):
                if not _wanted(task):
                    continue
                stopped = copy_task(task)
                stopped.desired_state = types_pb2.SHUTDOWN
                if down and task.status.state <= types_pb2.RUNNING:
                    stopped.status.state = types_pb2.ORPHANED
                    stopped.status.message = "node is down"
                    stopped.status.timestamp.GetCurrentTime()
                ops.append(Update(TASKS, stopped))
        await write_ops(self.context, ops)
