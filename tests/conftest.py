"""Shared fixtures. Tests that need root run for real in CI (CI=true): there a
missing privilege is a failure, not a skip."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI must run as root: the root tests may not be skipped there")
    skip = pytest.mark.skip(reason="needs root (runs for real in CI)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
