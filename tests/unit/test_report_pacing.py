"""The agent's status-report pacing: a few writes at once, then a steady rate."""

from __future__ import annotations

from pyswarm.agent.cluster.report_pacing import ReportPacer


def test_a_lone_tasks_changes_go_at_once_and_a_burst_is_paced() -> None:
    pacer = ReportPacer(rate=10.0, burst=5)
    for step in range(5):  # ACCEPTED .. RUNNING of one task, 5 ms apart
        now = step * 0.005
        assert pacer.delay(now) == 0.0
        pacer.sent(now)
    # The sixth waits for a token: 0.1 s at 10 a second, less the 25 ms since the first.
    assert 0.07 <= pacer.delay(0.025) <= 0.08
    pacer.sent(0.125)
    assert pacer.delay(0.13) > 0.0
    # After a quiet second the allowance is whole again.
    assert pacer.delay(1.5) == 0.0


def test_the_sustained_rate_is_kept_under_pressure() -> None:
    pacer = ReportPacer(rate=10.0, burst=5)
    now, writes = 0.0, 0
    while now < 10.0:
        now += pacer.delay(now)
        pacer.sent(now)
        writes += 1
        now += 0.001  # the next change comes a millisecond later
    assert writes <= 5 + 10 * 10 + 1
