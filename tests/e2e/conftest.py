"""The e2e tests' lab: one real 3-host lab with a registry, shared by every e2e module
(package scope: bringing a lab up costs seconds), removed at the end with a check that
nothing of it is left on the machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.lab import LabCluster


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    cluster = LabCluster(tmp_path_factory.mktemp("pyswarm-config"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        assert cluster.leftovers() == [], "lab down left parts of the lab behind"


@pytest.fixture
def service(lab: LabCluster) -> Iterator[list[str]]:
    """Names of services the test creates; removed when it ends, passed or failed."""
    names: list[str] = []
    yield names
    if names:
        lab.run("service", "rm", *names)
