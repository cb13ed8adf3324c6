"""The secrets and configs of this node's tasks: held in memory, and only while needed.

They arrive with the tasks that use them, in the session's Assignments (the manager
sends those of the tasks in each message). They are never written to the state dir, a
record or a log: the engine reads them from here when a task's container starts
(`TaskFileSource`), and the container gets them in its own tmpfs. Once no task that is
meant to run uses one, it is dropped; a running container keeps its files (its mounts
live with it), and a task started again after an agent restart waits for the session to
bring them again.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyswarm.proto import dispatcher_pb2, types_pb2


class TaskFiles:
    """Secret and config bytes by id (see the module doc); a `TaskFileSource`."""

    def __init__(self) -> None:
        self._secrets: dict[str, bytes] = {}
        self._configs: dict[str, bytes] = {}

    def __repr__(self) -> str:  # never the bytes
        return f"TaskFiles({len(self._secrets)} secrets, {len(self._configs)} configs)"

    def receive(self, assignments: dispatcher_pb2.Assignments) -> None:
        for secret in assignments.secrets:
            self._secrets[secret.id] = bytes(secret.spec.data)
        for config in assignments.configs:
            self._configs[config.id] = bytes(config.spec.data)

    def keep_for(self, tasks: Iterable[types_pb2.Task]) -> None:
        """Drop what no task that is meant to run uses."""
        secrets: set[str] = set()
        configs: set[str] = set()
        for task in tasks:
            if task.desired_state <= types_pb2.RUNNING:
                secrets.update(ref.secret_id for ref in task.spec.container.secrets)
                configs.update(ref.config_id for ref in task.spec.container.configs)
        for secret_id in set(self._secrets) - secrets:
            del self._secrets[secret_id]
        for config_id in set(self._configs) - configs:
            del self._configs[config_id]

    def missing(self, task: types_pb2.Task) -> list[str]:
        """What `task` uses that this node does not hold: "secret NAME", "config NAME"."""
        container = task.spec.container
        return [
            f"secret {ref.secret_name or ref.secret_id}"
            for ref in container.secrets
            if ref.secret_id not in self._secrets
        ] + [
            f"config {ref.config_name or ref.config_id}"
            for ref in container.configs
            if ref.config_id not in self._configs
        ]

    def held(self) -> tuple[set[str], set[str]]:
        """The ids of the secrets and configs held now."""
        return set(self._secrets), set(self._configs)

    # -- TaskFileSource (agent/engine/task_files.py) ---------------------------------

    def secret_data(self, secret_id: str) -> bytes | None:
        return self._secrets.get(secret_id)

    def config_data(self, config_id: str) -> bytes | None:
        return self._configs.get(config_id)
