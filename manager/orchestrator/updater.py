"""The rolling updater: replaces a service's outdated tasks at the pace its UpdateConfig
sets (its RollbackConfig while rolling back), as Docker Swarm does.

Keys are service ids. A slot (a global service's node) is outdated while a runnable task
there has a spec the service no longer has. While the service's UpdateStatus is UPDATING
or ROLLBACK_STARTED, each pass:

- counts failures: a task of the new spec, made since the update started, that
  fails, is rejected or exits within `monitor` of running (or before it ran); beyond
  `max_failure_ratio` of the service's tasks, `failure_action` pauses the update,
  rolls it back to the previous spec, or continues;
- finishes start-first slots: once the new task runs, the old one is shut down;
- starts replacements while fewer than `parallelism` (0 = all) slots are busy; a slot
  is busy from its new task's creation until `delay` after the new task runs.
  stop-first shuts the old task down and creates the new one in one transaction;
  start-first creates the new one beside the old;
- completes the update once no slot is outdated or busy and every new task has run for
  its monitor window.

Everything needed to resume lives in etcd: the tasks (which slots are done, and from
which service version each was made), the status (the version the update started at,
the failures counted). A new leader re-arms the monitor and delay
windows from when it first sees the tasks, so an update resumes rather than restarts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyswarm.manager.orchestrator import update_status
from pyswarm.manager.orchestrator.index import TaskIndex, copy_task
from pyswarm.manager.orchestrator.loop import LoopContext, ReconcileLoop, write_ops
from pyswarm.manager.orchestrator.restart_policy import is_job
from pyswarm.manager.orchestrator.slots import SlotKey, outdated_check, slot_key
from pyswarm.manager.scheduler import new_task
from pyswarm.manager.store import SERVICES, TASKS, Create, Op, StoreEvent, Update
from pyswarm.proto import types_pb2

Task = types_pb2.Task
Service = types_pb2.Service
Config = types_pb2.UpdateConfig
Status = types_pb2.UpdateStatus

#: Ends that count against an update within the monitor window (ORPHANED is the node's
#: fault, SHUTDOWN the manager's own doing).
_FAILED_ENDS = (types_pb2.FAILED, types_pb2.REJECTED, types_pb2.COMPLETE)


def _runnable(task: Task) -> bool:
    return task.desired_state <= types_pb2.RUNNING


def _retired(task: Task) -> Task:
    stopped = copy_task(task)
    stopped.desired_state = types_pb2.SHUTDOWN
    return stopped


@dataclass
class _Slots:
    """One service's runnable tasks by slot, split into what the pass acts on."""

    outdated: dict[SlotKey, list[Task]] = field(default_factory=dict)
    renewed: dict[SlotKey, Task] = field(default_factory=dict)


class RollingUpdater(ReconcileLoop):
    name = "updater"
    kinds = (SERVICES, TASKS)

    def __init__(self, context: LoopContext) -> None:
        super().__init__(context)
        self.tasks = TaskIndex()
        # When this leader first saw each task running, and ended (its clock).
        self._ran: dict[str, float] = {}
        self._ended: dict[str, float] = {}

    def prime(self) -> None:
        self.tasks.load(self.cache.list(TASKS))
        now = self.clock()
        for task in self.tasks.by_id.values():
            self._note(task, now)
        self.mark_all(service.id for service in self.cache.list(SERVICES))

    def observe(self, event: StoreEvent) -> None:
        if event.kind == SERVICES.name:
            self.mark(event.id)
            return
        before, after = self.tasks.apply(event)
        if after is None:
            self._ran.pop(event.id, None)
            self._ended.pop(event.id, None)
        else:
            self._note(after, self.clock())
        for task in (before, after):
            if task is not None and self._updating(task.service_id):
                self.mark(task.service_id)

    def _updating(self, service_id: str) -> bool:
        """Tasks matter to a service's update while one is under way; otherwise only
        the service's own changes (and the first pass, `prime`) are looked at."""
        service = self.cache.get(SERVICES, service_id)
        return service is not None and service.update_status.state in update_status.ACTIVE

    def _note(self, task: Task, now: float) -> None:
        if task.status.state == types_pb2.RUNNING:
            self._ran.setdefault(task.id, now)
        if task.status.state > types_pb2.RUNNING:
            self._ended.setdefault(task.id, now)

    async def reconcile(self, keys: set[str]) -> None:
        ops: list[Op] = []
        for service_id in sorted(keys):
            service = self.cache.get(SERVICES, service_id)
            if service is not None and not is_job(service):  # a job's update re-runs it
                ops.extend(self._advance(service))
        await write_ops(self.context, ops)

    # -- one service ---------------------------------------------------------------

    def _advance(self, service: Service) -> list[Op]:
        status = service.update_status
        tasks = self.tasks.of_service(service.id)
        is_outdated = outdated_check(service)
        if status.state not in update_status.ACTIVE:
            if status.state == Status.UNKNOWN and any(
                _runnable(t) and is_outdated(t) for t in tasks
            ):
                # Outdated tasks with no update on record (a store from before
                # updates were paced): update them like any other.
                updated = self._copy(service)
                update_status.start(updated, Status.UPDATING, update_status.IN_PROGRESS)
                return [Update(SERVICES, updated)]
            return []
        if not status.started_version:
            # Mark where this update begins before making any of its tasks.
            updated = self._copy(service)
            updated.update_status.started_version = service.meta.version
            return [Update(SERVICES, updated)]
        config = update_status.pacing(service)
        monitor = update_status.monitor_seconds(config)
        watched = [
            t for t in tasks if t.spec_version >= status.started_version and not is_outdated(t)
        ]
        failures = self._new_failures(watched, status, monitor)
        if failures:
            return [Update(SERVICES, self._after_failures(service, tasks, failures))]
        slots = self._slots(tasks, is_outdated)
        ops: list[Op] = []
        for key, new in slots.renewed.items():
            if key in slots.outdated and new.status.state == types_pb2.RUNNING:
                ops.extend(Update(TASKS, _retired(t)) for t in slots.outdated.pop(key))
        now = self.clock()
        busy = self._busy(watched, config, now)
        counted = set(status.failed_tasks)
        failed = {slot_key(t) for t in tasks if t.id in counted}  # not retried this update
        waiting = [
            key for key in sorted(slots.outdated) if key not in slots.renewed and key not in failed
        ]
        free = len(waiting) if not config.parallelism else max(0, config.parallelism - busy)
        for key in waiting[:free]:
            ops.extend(self._replace(service, key, slots.outdated[key], config))
        if ops:
            return ops
        if not waiting and not busy and self._monitored(watched, monitor, now):
            updated = self._copy(service)
            update_status.finish(updated)
            return [Update(SERVICES, updated)]
        return []

    @staticmethod
    def _slots(tasks: list[Task], is_outdated: Callable[[Task], bool]) -> _Slots:
        slots = _Slots()
        for task in tasks:
            if not _runnable(task):
                continue
            if is_outdated(task):
                slots.outdated.setdefault(slot_key(task), []).append(task)
            else:
                slots.renewed[slot_key(task)] = task
        return slots

    def _replace(self, service: Service, key: SlotKey, old: list[Task], config: Config) -> list[Op]:
        """The writes that start replacing one slot's outdated tasks."""
        _, slot, node_id = key
        ops: list[Op] = [Create(TASKS, new_task(service, slot=slot, node_id=node_id))]
        if config.order == Config.STOP_FIRST:
            ops.extend(Update(TASKS, _retired(t)) for t in old)
        return ops

    def _busy(self, watched: list[Task], config: Config, now: float) -> int:
        """Slots still being replaced: new task not running yet, or ran less than `delay`
        ago (the updater waits that long before the slot's worker takes the next)."""
        delay = config.delay.ToNanoseconds() / 1e9
        busy = 0
        for task in watched:
            if not _runnable(task) or task.status.state > types_pb2.RUNNING:
                continue  # an ended task frees its slot (its failure is counted apart)
            ran = self._ran.get(task.id)
            if ran is None:
                busy += 1
            elif now < ran + delay:
                busy += 1
                self.wake_at(task.service_id, ran + delay)
        return busy

    def _monitored(self, watched: list[Task], monitor: float, now: float) -> bool:
        """Every new task still wanted has run for its monitor window."""
        done = True
        for task in watched:
            ran = self._ran.get(task.id)
            running = task.status.state == types_pb2.RUNNING
            if _runnable(task) and running and ran is not None and now < ran + monitor:
                self.wake_at(task.service_id, ran + monitor)
                done = False
        return done

    # -- failures ------------------------------------------------------------------

    def _new_failures(self, watched: list[Task], status: Status, monitor: float) -> list[Task]:
        counted = set(status.failed_tasks)
        failures = []
        for task in watched:
            if task.id in counted or task.status.state not in _FAILED_ENDS:
                continue
            ran, ended = self._ran.get(task.id), self._ended.get(task.id)
            # Not seen running: it ended while starting (or before this leader looked).
            if ran is None or ended is None or ended - ran <= monitor:
                failures.append(task)
        failures.sort(key=lambda t: (t.meta.created_at.ToNanoseconds(), t.id))
        return failures

    def _after_failures(self, service: Service, tasks: list[Task], failures: list[Task]) -> Service:
        """The service with `failures` counted and, beyond the ratio, the failure action."""
        updated = self._copy(service)
        status = updated.update_status
        status.failed_tasks.extend(t.id for t in failures)
        config = update_status.pacing(service)
        if service.spec.WhichOneof("mode") == "replicated":
            total = service.spec.replicated.replicas
        else:
            total = len({slot_key(t) for t in tasks if _runnable(t)})
        if len(status.failed_tasks) / max(total, 1) <= config.max_failure_ratio:
            return updated
        culprit = failures[0].id
        action = config.failure_action
        if action == Config.CONTINUE:
            return updated
        can_roll_back = not update_status.is_rollback(status) and service.HasField("previous_spec")
        if action == Config.ROLLBACK and can_roll_back:
            update_status.roll_back(updated, update_status.failed_rollback_message(culprit))
        else:
            update_status.pause(updated, culprit)
        return updated

    @staticmethod
    def _copy(service: Service) -> Service:
        copy = Service()
        copy.CopyFrom(service)
        return copy
