"""Shared fixtures. Tests that need root run for real in CI (CI=true): there a
missing privilege is a failure, not a skip."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.harness.agent_process import AgentProcess
from tests.harness.asyncio_leaks import LeakCheckingPolicy, take_reports


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI must run as root: the root tests may not be skipped there")
    skip = pytest.mark.skip(reason="needs root (runs for real in CI)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _leak_checking_loops() -> Iterator[None]:
    """Every event loop made in the tests notes the tasks and loop errors it leaves."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(LeakCheckingPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.fixture(autouse=True)
def no_asyncio_leaks(_leak_checking_loops: None) -> Iterator[None]:
    """Fail the test that leaves an asyncio task running or calls a loop's exception
    handler (STYLE.md point 11: every task, call and stream is owned and awaited)."""
    yield
    reports = take_reports()
    if reports:
        pytest.fail("asyncio leaks:\n" + "\n".join(reports), pytrace=False)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """A running agent with its own bridge, cgroups and state, and a busybox image."""
    process = AgentProcess(tmp_path_factory.mktemp("agent"))
    try:
        process.start()
        process.cli("image", "busybox", "busybox:latest")
        yield process
    finally:
        process.close()
