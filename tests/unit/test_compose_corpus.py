"""Every real compose file of the shared corpus (read in place) either converts into
service specs a stack deploys, or is refused with messages that name each key at fault.
The corpus's own compose-spec schema checks that pyswarm's schema knows every service
key compose knows (supported or ignored), so a real file never meets "unknown key" for
a key that exists."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyswarm.proto import types_pb2
from pyswarm.stack.compose.loader import load_project, sources_from_paths
from pyswarm.stack.compose.schema import (
    COMPOSE,
    DEPLOY,
    FILE_OBJECT,
    NETWORK,
    SERVICE,
    VOLUME,
)
from pyswarm.stack.convert import service_spec
from pyswarm.stack.errors import ComposeError, ComposeErrors
from pyswarm.stack.names import NAMESPACE_LABEL, Namer

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "compose-corpus"
DEPLOYABLE = {
    "docker_compose__pkg_e2e_fixtures_restart-test_compose-depends-on.yaml": 3,
    "docker_compose__pkg_e2e_testdata_TestScaleWithDepsCases_compose.yaml": 4,
    "docker_compose__tests_fixtures_compatibility-mode_docker-compose.yml": 1,
    "docker_compose__tests_fixtures_healthcheck_docker-compose.yml": 3,
    "docker_compose__tests_fixtures_ports-composefile_expanded-notation.yml": 1,
    "docker_compose__tests_fixtures_v3-full_docker-compose.yml": 1,
}
# Refused files: a phrase each expected message holds.
REFUSED = {
    "dockersamples_example-voting-app__docker-compose.yml": [
        "services.vote: no image", "services.result: no image", "services.worker: no image",
    ],
    "docker_cli__cli_compose_loader_full-example.yml": [
        'services.foo.volumes[8].type: must be one of bind, volume, tmpfs, got "cluster"',
    ],
    "compose-spec_compose-go__loader_full-example.yml": [
        "services.bar: no image",
        'services.foo.depends_on: depends on undefined service "db"',
        'network "other-other-network" is not defined',
    ],
}  # fmt: skip

# In CI the corpus is always there: a missing corpus fails there rather than skipping.
pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir() and not os.environ.get("CI"), reason="the shared compose corpus is absent"
)


def test_the_corpus_is_all_covered() -> None:
    files = {p.name for p in CORPUS.glob("*.y*ml")}
    assert files == set(DEPLOYABLE) | set(REFUSED)


@pytest.mark.parametrize("name", sorted(DEPLOYABLE))
def test_deployable_files_convert(name: str) -> None:
    project = load_project(sources_from_paths([str(CORPUS / name)]), {})
    assert len(project.services) == DEPLOYABLE[name]
    namer = Namer("corpus")
    for service in project.services:
        spec = service_spec(service, project, namer)
        assert spec.annotations.name == f"corpus_{service}"
        assert spec.annotations.labels[NAMESPACE_LABEL] == "corpus"
        assert spec.task.container.image == project.services[service]["image"]
        assert [n.target for n in spec.task.networks]


def test_converted_details_of_the_full_v3_file() -> None:
    name = "docker_compose__tests_fixtures_v3-full_docker-compose.yml"
    project = load_project(sources_from_paths([str(CORPUS / name)]), {})
    spec = service_spec("web", project, Namer("v3"))
    assert spec.replicated.replicas == 6
    assert spec.annotations.labels["FOO"] == "BAR"
    assert spec.update.parallelism == 3 and spec.update.delay.seconds == 10
    assert spec.update.failure_action == types_pb2.UpdateConfig.CONTINUE
    assert abs(spec.update.max_failure_ratio - 0.3) < 1e-6
    assert spec.task.resources.limits.nano_cpus == 50_000_000
    assert spec.task.resources.limits.memory_bytes == 50 * 1024 * 1024
    assert spec.task.restart.condition == types_pb2.RestartPolicy.ON_FAILURE
    assert spec.task.restart.max_attempts == 3 and spec.task.restart.window.seconds == 120
    assert list(spec.task.placement.constraints) == ["node.hostname==foo", "node.role != manager"]
    assert list(spec.task.container.healthcheck.test) == ["CMD-SHELL", "cat /etc/passwd"]
    assert spec.task.container.stop_grace_period.seconds == 20
    mounts = [(m.type, m.source, m.target, m.read_only) for m in spec.task.container.mounts]
    assert mounts == [
        (types_pb2.Mount.BIND, "/host/path", "/container/path", True),
        (types_pb2.Mount.VOLUME, "v3_foobar", "/container/volumepath", False),
        (types_pb2.Mount.VOLUME, "", "/anonymous", False),
        (types_pb2.Mount.VOLUME, "v3_foobar", "/container/volumepath2", False),
    ]
    assert [n.target for n in spec.task.networks] == ["v3_default"]
    (preference,) = spec.task.placement.preferences
    assert preference.spread.spread_descriptor == "node.labels.datacenter"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_files_name_each_key(name: str) -> None:
    with pytest.raises(ComposeError) as err:
        load_project(sources_from_paths([str(CORPUS / name)]), {})
    messages = err.value.errors if isinstance(err.value, ComposeErrors) else [err.value]
    text = "\n".join(m.message for m in messages)
    for phrase in REFUSED[name]:
        assert phrase in text, (phrase, text)
    assert "unknown key" not in text


@pytest.mark.parametrize(
    ("definition", "ours"),
    [("service", SERVICE), ("network", NETWORK), ("volume", VOLUME), ("secret", FILE_OBJECT),
     ("config", FILE_OBJECT), ("deployment", DEPLOY), (None, COMPOSE)],
)  # fmt: skip
def test_every_compose_spec_key_is_known(definition: str | None, ours: dict[str, Any]) -> None:
    spec = json.loads((CORPUS / "compose-spec.json").read_text())
    theirs = spec["definitions"][definition] if definition else spec
    missing = set(theirs["properties"]) - set(ours["properties"])
    assert missing == set(), sorted(missing)


def test_runtime_settings_reach_the_container_spec(tmp_path: Path) -> None:
    name = "docker_compose__pkg_e2e_fixtures_restart-test_compose-depends-on.yaml"
    project = load_project(sources_from_paths([str(CORPUS / name)]), {"LABEL": "from-env"})
    container = service_spec("with-restart", project, Namer("c")).task.container
    assert container.init and container.stop_signal == "SIGTERM"
    assert list(container.args) == ["tail", "-f", "/dev/null"]
    nginx = service_spec("nginx", project, Namer("c")).task.container
    assert nginx.labels["TEST"] == "from-env"
    assert list(nginx.healthcheck.test) == ["CMD-SHELL", "echo | nc -w 5 localhost:80"]
    assert nginx.healthcheck.interval_ns == 2_000_000_000 and nginx.healthcheck.retries == 10
    compose = tmp_path / "c.yml"
    compose.write_text(
        "services:\n  s:\n    image: busybox\n    sysctls: {net.core.somaxconn: 1024}\n"
        "    ulimits: {nofile: {soft: 100, hard: 200}}\n    dns: [10.0.0.2]\n"
        "    extra_hosts: ['db:10.0.0.9']\n    group_add: [audio]\n"
    )
    spec = service_spec("s", load_project(sources_from_paths([str(compose)]), {}), Namer("c"))
    container = spec.task.container
    assert dict(container.sysctls) == {"net.core.somaxconn": "1024"}
    assert [(u.name, u.soft, u.hard) for u in container.ulimits] == [("nofile", 100, 200)]
    assert list(container.dns_config.nameservers) == ["10.0.0.2"]
    assert list(container.hosts) == ["10.0.0.9 db"] and list(container.groups) == ["audio"]


def test_jobs_and_generic_resources_convert(tmp_path: Path) -> None:
    compose = tmp_path / "jobs.yml"
    compose.write_text(
        "services:\n"
        "  migrate:\n    image: busybox\n    deploy: {mode: replicated-job, replicas: 3}\n"
        "  sweep:\n    image: busybox\n    deploy:\n      mode: global-job\n"
        "      resources: {reservations: {generic_resources: "
        "[{discrete_resource_spec: {kind: gpu, value: 2}}]}}\n"
    )
    project = load_project(sources_from_paths([str(compose)]), {})
    migrate = service_spec("migrate", project, Namer("j"))
    assert migrate.replicated_job.total_completions == 3
    assert migrate.task.restart.condition == types_pb2.RestartPolicy.ON_FAILURE
    sweep = service_spec("sweep", project, Namer("j"))
    assert sweep.WhichOneof("mode") == "global_job"
    assert [(g.kind, g.value) for g in sweep.task.resources.reservations.generic] == [("gpu", 2)]
