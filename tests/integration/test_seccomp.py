"""Seccomp in real containers run by a real agent: the default filter on every path
that starts a process (run, exec, health probes, Dockerfile RUN steps), the profiles
a container may ask for (unconfined, docker's JSON), no_new_privs only on request."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pyswarm.proto import agent_pb2, agent_pb2_grpc, types_pb2
from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root

STATUS = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
DENY_MKDIR = json.dumps(
    {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
)


def _status(text: str) -> dict[str, str]:
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields}


def _name() -> str:
    return f"seccomp-{secrets.token_hex(4)}"


@pytest.fixture
def api(agent: AgentProcess) -> Iterator[agent_pb2_grpc.ContainerAPIStub]:
    """The agent's container API, for the security options the CLI does not send."""
    with grpc.insecure_channel(f"unix:{agent.socket}") as channel:
        yield agent_pb2_grpc.ContainerAPIStub(channel)


def _run_spec(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub, script: str, **security: Any
) -> str:
    """Run `sh -c script` in busybox with `security` set on its ContainerSpec; its output."""
    name = _name()
    spec = types_pb2.ContainerSpec(command=["sh", "-c", script], **security)
    request = agent_pb2.CreateContainerRequest(
        name=name,
        image="busybox",
        spec=spec,
        entrypoint_set=True,
        network_mode=types_pb2.Container.NONE,
        start=True,
    )
    try:
        container = api.Create(request, timeout=60)
        api.Wait(agent_pb2.ContainerRef(id=container.id), timeout=60)
        return str(agent.cli("logs", name).stdout)
    finally:
        agent.cli("rm", "-f", name, check=False)


def test_default_container_is_in_seccomp_filter_mode_without_no_new_privs(
    agent: AgentProcess,
) -> None:
    out = agent.cli("run", "--rm", "--network", "none", "busybox", "sh", "-c", STATUS).stdout
    assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "0"}


def test_probe_unshare_user_namespace_fails_with_eperm(agent: AgentProcess) -> None:
    result = agent.cli(
        "run", "--rm", "--network", "none", "busybox", "unshare", "-Ur", "id", check=False
    )
    assert result.returncode != 0
    assert "Operation not permitted" in result.stdout + result.stderr
    assert "uid=0" not in result.stdout


def test_probe_clone_into_new_namespace_fails_but_fork_works(agent: AgentProcess) -> None:
    script = "unshare -n true; echo unshare=$?; sh -c 'echo child'"
    out = agent.cli("run", "--rm", "--network", "none", "busybox", "sh", "-c", script).stdout
    assert "unshare=1" in out  # busybox reports the EPERM and exits 1
    assert "child" in out  # plain fork/clone is allowed


def test_unconfined_container_has_no_filter(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub
) -> None:
    out = _run_spec(agent, api, f"{STATUS}; unshare -Ur id", seccomp_profile="unconfined")
    assert _status(out)["Seccomp"] == "0"
    assert "uid=0(root)" in out  # what the filter stops, when it is off


def test_privileged_container_has_no_filter(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub
) -> None:
    out = _run_spec(agent, api, STATUS, privileged=True)
    assert _status(out)["Seccomp"] == "0"


def test_no_new_privileges_option_sets_no_new_privs_and_keeps_the_filter(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub
) -> None:
    out = _run_spec(agent, api, STATUS, no_new_privileges=True)
    assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "1"}


def test_docker_format_profile_denying_mkdir_makes_mkdir_fail_with_eperm(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub
) -> None:
    script = "mkdir /x 2>&1; echo mkdir=$?; touch /y && echo touched"
    out = _run_spec(agent, api, script, seccomp_profile=DENY_MKDIR)
    assert "Operation not permitted" in out
    assert "mkdir=1" in out
    assert "touched" in out  # the profile's default allows the rest


def test_bad_profile_is_refused_on_create_and_nothing_is_made(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub
) -> None:
    cases = {
        '{"defaultAction": "SCMP_ACT_ALLOW",': "not valid JSON",
        '{"defaultAction": "SCMP_ACT_NOPE"}': "SCMP_ACT_NOPE",
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], '
        '"action": "SCMP_ACT_ERRNO"}]}': "mkdri",
    }
    for profile, named in cases.items():
        name = _name()
        request = agent_pb2.CreateContainerRequest(
            name=name,
            image="busybox",
            spec=types_pb2.ContainerSpec(command=["true"], seccomp_profile=profile),
            entrypoint_set=True,
        )
        with pytest.raises(grpc.RpcError) as caught:
            api.Create(request, timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert named in str(caught.value.details())
        assert name not in agent.cli("ps", "-a").stdout


def test_exec_process_gets_the_containers_filter(
    agent: AgentProcess, api: agent_pb2_grpc.ContainerAPIStub
) -> None:
    name = _name()
    spec = types_pb2.ContainerSpec(command=["sleep", "1000"], no_new_privileges=True)
    request = agent_pb2.CreateContainerRequest(
        name=name, image="busybox", spec=spec, entrypoint_set=True, start=True
    )
    try:
        api.Create(request, timeout=60)
        out = agent.cli("exec", name, "sh", "-c", STATUS).stdout
        assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "1"}
        refused = agent.cli("exec", name, "unshare", "-Ur", "id", check=False)
        assert "Operation not permitted" in refused.stdout + refused.stderr
    finally:
        agent.cli("rm", "-f", name, check=False)


def test_health_probe_gets_the_containers_filter(agent: AgentProcess) -> None:
    name = _name()
    agent.cli(
        "run", "-d", "--name", name, "--network", "none",
        "--health-cmd", STATUS, "--health-interval", "200ms",
        "busybox", "sleep", "1000",
    )  # fmt: skip
    try:

        def probe_output() -> str:
            state = json.loads(agent.cli("inspect", name).stdout)[0]["State"]
            log = (state.get("Health") or {}).get("Log") or []
            return str(log[-1]["Output"]) if log else ""

        out = wait_for(probe_output, timeout=30, what="a health probe's output")
        assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "0"}
    finally:
        agent.cli("rm", "-f", name, check=False)


def test_dockerfile_run_step_gets_the_default_filter(agent: AgentProcess, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM busybox\nRUN {STATUS} > /status\n")
    tag = f"seccomp-run-{secrets.token_hex(3)}:1"
    agent.cli("build", "-q", "-t", tag, str(context))
    try:
        out = agent.cli("run", "--rm", "--network", "none", tag, "cat", "/status").stdout
        assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "0"}
    finally:
        agent.cli("rmi", "-f", tag, check=False)
