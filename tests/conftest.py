"""Shared fixtures. Tests that need root run for real in CI (CI=true): there a
missing privilege is a failure, not a skip."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.agent_process import AgentProcess


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI must run as root: the root tests may not be skipped there")
    skip = pytest.mark.skip(reason="needs root (runs for real in CI)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


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
