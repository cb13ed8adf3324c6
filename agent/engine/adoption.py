"""Adoption: after the agent (re)starts, its records meet what the supervisor knows.

Containers still running are watched (and served by the resolver) again; in cluster
mode their VIPs and return paths follow the network view again too (cluster/mode.py's
adopt_endpoints, once the overlays exist). Those that exited while the agent was down
get their exit recorded (and their host resources released); an auto_remove one that
is not running is removed, as docker's AutoRemove would have done; a container the
agent removed but the supervisor still remembers is forgotten. A start cut short by the
agent's death is settled either way: carried through by the supervisor, the container
is adopted as running; never run, what the start made on the host is released - as is
what any container not running still holds (an agent killed between recording an exit
and releasing its cgroups left them for good).
"""

from __future__ import annotations

import contextlib

from pyswarm.agent.engine.manager import ContainerEngine
from pyswarm.agent.engine.spec import timestamp_of
from pyswarm.proto import types_pb2

# The exit code of a container whose process is gone without a trace (docker: killed).
EXIT_LOST = 137


async def adopt(manager: ContainerEngine) -> None:
    """Reconcile the manager's records with the supervisor's after a (re)start."""
    states = {s.id: s for s in await manager.supervisor.list()}
    known = {c.id for c in manager.records}
    for cid, supervised in states.items():
        if cid not in known and not supervised.running:
            # Removed here, but the agent stopped before the supervisor forgot it.
            with contextlib.suppress(Exception):
                await manager.supervisor.forget(cid)
    for container in manager.records:
        state = states.get(container.id)
        if state is not None and state.running:
            if container.state != types_pb2.Container.RUNNING:
                # Its start was cut short by the agent's death, and the supervisor
                # carried it through: it runs, and is this agent's to watch.
                container.state = types_pb2.Container.RUNNING
                container.exit_code = 0
                container.error = ""
                container.started_at.CopyFrom(timestamp_of(state.started_at))
                container.ClearField("finished_at")
            container.pid = state.pid
            manager.records.save(container)
            await manager.names.adopt(container)
            manager.watch(container.id)
            continue
        if container.state == types_pb2.Container.RUNNING:
            if state is None:
                await manager.record_exit(container.id, EXIT_LOST, "lost: no process found")
            else:
                await manager.record_exit(
                    container.id, state.exit_code, state.error, state.finished_at
                )
        else:
            # Not running: whatever it still holds on the host goes (a start cut short
            # before the supervisor ran it, or an exit recorded by an agent killed before
            # it released the sandbox and cgroups); the record stays.
            await manager.resources.release_leftovers(container.id)
        if container.auto_remove:
            await manager.remove(container.id, force=True)
