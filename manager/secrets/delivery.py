"""What an agent is sent with its tasks: the secrets and configs they use, in clear.

The cache holds them opened (the store's codec unseals on the way in from etcd); they
leave the manager only inside an Assignments message on the node's mutual-TLS session,
and only those that the tasks in that message use while they are meant to run. A task
the agent is told to stop needs none: its files live in its container's own tmpfs.
"""

from __future__ import annotations

from pyswarm.manager.secrets.flavors import CONFIG, SECRET
from pyswarm.manager.secrets.references import referenced_ids
from pyswarm.manager.store import CONFIGS, SECRETS, Cache
from pyswarm.proto import dispatcher_pb2, types_pb2


def attach_files(assignments: dispatcher_pb2.Assignments, cache: Cache) -> None:
    """Add to `assignments` the secrets and configs its live updated tasks reference."""
    secret_ids: set[str] = set()
    config_ids: set[str] = set()
    for task in assignments.updated:
        if task.desired_state <= types_pb2.RUNNING:
            secret_ids |= referenced_ids(SECRET, task.spec)
            config_ids |= referenced_ids(CONFIG, task.spec)
    for secret_id in sorted(secret_ids):
        secret = cache.get(SECRETS, secret_id)
        if secret is not None:
            assignments.secrets.append(secret)
    for config_id in sorted(config_ids):
        config = cache.get(CONFIGS, config_id)
        if config is not None:
            assignments.configs.append(config)
