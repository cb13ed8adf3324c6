"""When each etcd revision happened, as far as this manager saw it.

etcd keeps no times: a revision is only a number. `events --since 10m` needs the
revision to replay from, and a replayed removal needs a time (a put carries its own,
`meta.updated_at`; a delete leaves nothing). `RevisionClock` notes the wall-clock time
at which the manager's watch-fed cache reached each revision (`Cache.on_advance`: a
call per watch batch, no queue), in bounded memory, from the moment this manager
started. Before that, `start_revision` answers None (replay
from the oldest history etcd still holds) and `time_of` answers None.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

from pyswarm.manager.store import Cache

__all__ = ["RevisionClock"]

#: Revisions remembered: at one write a second, more than a day.
DEFAULT_CAPACITY = 100_000


class RevisionClock:
    """`record(revision)` notes when a revision was seen; given a cache, every revision
    the cache reaches is recorded."""

    def __init__(
        self,
        cache: Cache | None = None,
        *,
        now: Callable[[], float] = time.time,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._now = now
        self._capacity = capacity
        # Two sorted lists (bisect needs indexing); trimmed by a quarter when full.
        self._revisions: list[int] = []
        self._times: list[float] = []
        if cache is not None:
            cache.on_advance(self.record)

    def record(self, revision: int, at: float | None = None) -> None:
        if self._revisions and revision <= self._revisions[-1]:
            return
        self._revisions.append(revision)
        self._times.append(self._now() if at is None else at)
        if len(self._revisions) > self._capacity:
            drop = max(1, self._capacity // 4)
            del self._revisions[:drop], self._times[:drop]

    def start_revision(self, since: float) -> int | None:
        """The first revision that may have happened at or after `since`; None when
        `since` is before anything this clock saw."""
        if not self._times or since < self._times[0]:
            return None
        index = bisect.bisect_left(self._times, since)
        # Revisions after the last one seen before `since` may have happened after it.
        return self._revisions[index - 1] + 1

    def time_of(self, revision: int) -> float | None:
        """When the cache first held `revision` (None: before this clock's memory)."""
        if not self._revisions or revision < self._revisions[0]:
            return None
        index = bisect.bisect_left(self._revisions, revision)
        return self._times[index] if index < len(self._times) else self._now()
