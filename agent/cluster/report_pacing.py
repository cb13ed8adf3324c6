"""How often an agent writes its task status reports to the manager: a token bucket.

A few writes go at once (a lone task's ACCEPTED, PREPARING, STARTING and RUNNING each
reach the manager as they happen); past that, writes go at most REPORTS_PER_S a second
and the changes that arrive meanwhile join the next batch (the latest per task). In a
burst of starts each agent had written ~600 messages of 1.7 updates for its 333 tasks,
each one a read, a batch and an etcd transaction on the manager.
"""

from __future__ import annotations

REPORTS_PER_S = 10.0
REPORT_BURST = 5


class ReportPacer:
    def __init__(self, rate: float = REPORTS_PER_S, burst: int = REPORT_BURST) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next write may go (0: at once)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self._rate)

    def sent(self, now: float) -> None:
        """A write went at `now`."""
        self._refill(now)
        self._tokens = max(0.0, self._tokens - 1.0)
