"""Registry passwords that older managers wrote in clear: sealed once at start.

Each service or task whose stored password is still clear is rewritten through the
sealing codec in guarded updates (mod_revision compared); an object that changed in the
meantime was written by a manager that seals, so a conflict is left alone.
"""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from pyswarm.manager.seal.codec import SEALED_PASSWORD_PREFIX
from pyswarm.manager.store import SERVICES, TASKS, Conflict, Kind, Op, Store, StoreError, Update
from pyswarm.proto import types_pb2

log = logging.getLogger(__name__)


def _clear_password(task: types_pb2.TaskSpec) -> bool:
    if not (task.HasField("container") and task.container.HasField("registry_auth")):
        return False
    password = task.container.registry_auth.password
    return bool(password) and not password.startswith(SEALED_PASSWORD_PREFIX)


def _needs_seal(message: Message) -> bool:
    if isinstance(message, types_pb2.Service):
        return _clear_password(message.spec.task) or _clear_password(message.previous_spec.task)
    if isinstance(message, types_pb2.Task):
        return _clear_password(message.spec)
    return False


async def seal_registry_passwords(store: Store) -> int:
    """Rewrite, sealed, every service and task holding a clear password; how many.
    `store` has the sealing codec."""
    plain = Store(store.client)  # to see what etcd holds, not what the codec opens
    ops: list[Op] = []
    kinds: tuple[Kind[Message], ...] = (SERVICES, TASKS)
    for kind in kinds:
        clear = {raw.id for raw in await plain.list(kind) if _needs_seal(raw)}  # type: ignore[attr-defined]
        if clear:
            opened = await store.list(kind)
            ops.extend(Update(kind, o) for o in opened if o.id in clear)  # type: ignore[attr-defined]
    if not ops:
        return 0
    try:
        await store.batch(ops)
    except Conflict:
        log.info("registry passwords: some objects changed while sealing; they are sealed")
    except StoreError as err:
        log.warning("registry passwords not all sealed: %s", err)
    log.info("sealed the registry passwords of %d objects", len(ops))
    return len(ops)
