"""The container commands end to end: CLI -> agent (gRPC) -> supervisor -> kernel."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from pyswarm.agent.runtime.cgroups import CgroupManager
from pyswarm.proto import types_pb2
from tests.harness.agent_process import AgentProcess
from tests.waiting import wait_for

pytestmark = pytest.mark.root


def _ps_all(agent: AgentProcess) -> list[dict[str, str]]:
    out = agent.cli("ps", "-a", "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _inspect(agent: AgentProcess, ref: str) -> dict[str, object]:
    result: list[dict[str, object]] = json.loads(agent.cli("inspect", ref).stdout)
    return result[0]


def _state(agent: AgentProcess, ref: str) -> dict[str, object]:
    state = _inspect(agent, ref)["State"]
    assert isinstance(state, dict)
    return state


def test_run_attached_prints_output_and_removes_with_rm(agent: AgentProcess) -> None:
    result = agent.cli("run", "--rm", "--name", "hello", "busybox", "echo", "hello world")
    assert result.stdout == "hello world\n"
    wait_for(lambda: all(c["Names"] != "hello" for c in _ps_all(agent)), what="--rm removal")


def test_exit_codes_follow_docker(agent: AgentProcess) -> None:
    assert agent.cli("run", "--rm", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    missing = agent.cli("run", "--rm", "busybox", "no-such-command", check=False)
    assert missing.returncode == 127, missing.stderr
    assert "not found" in missing.stderr
    not_exec = agent.cli("run", "--rm", "busybox", "/etc/passwd", check=False)
    assert not_exec.returncode == 126, not_exec.stderr
    no_image = agent.cli("run", "no-such-image:1", "true", check=False)
    assert no_image.returncode == 125
    assert "No such image" in no_image.stderr
    assert "Traceback" not in no_image.stderr


def test_stdout_and_stderr_are_kept_apart_in_logs(agent: AgentProcess) -> None:
    cid = agent.cli(
        "run", "-d", "--name", "talker", "busybox", "sh", "-c", "echo out; echo err >&2; echo two"
    ).stdout.strip()
    assert len(cid) == 64
    wait_for(lambda: _state(agent, "talker")["Status"] == "exited", what="talker to exit")
    logs = agent.cli("logs", "talker")
    assert logs.stdout == "out\ntwo\n"
    assert logs.stderr == "err\n"
    tail = agent.cli("logs", "--tail", "1", "talker")
    assert len((tail.stdout + tail.stderr).splitlines()) == 1
    stamped = agent.cli("logs", "-t", "talker").stdout.splitlines()
    assert stamped[0].endswith(" out") and stamped[0][:4].isdigit()
    agent.cli("rm", "talker")
    counted = agent.cli("run", "--name", "counter", "busybox", "sh", "-c", "echo a; echo b; echo c")
    assert counted.stdout == "a\nb\nc\n"
    assert agent.cli("logs", "--tail", "2", "counter").stdout == "b\nc\n"
    assert agent.cli("logs", "-f", "--tail", "1", "counter").stdout == "c\n"
    assert agent.cli("logs", "-f", "--tail", "0", "counter").stdout == ""
    agent.cli("rm", "counter")


def test_published_port_serves_a_page_and_ps_shows_it(agent: AgentProcess) -> None:
    agent.cli(
        "run", "-d", "--name", "web", "-p", "127.0.0.1:0:80", "busybox",
        "httpd", "-f", "-p", "80", "-h", "/var/www",
    )  # fmt: skip
    try:
        mapping = agent.cli("port", "web", "80").stdout.strip()
        host, port = mapping.rsplit(":", 1)
        assert host == "127.0.0.1"

        def fetch() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                body: str = response.read().decode()
                return body

        assert "hello from pyswarm" in wait_for(fetch, what="the page")
        row = next(c for c in _ps_all(agent) if c["Names"] == "web")
        assert row["State"] == "running"
        assert f"127.0.0.1:{port}->80/tcp" in row["Ports"]
        assert row["ID"] in agent.cli("ps", "-q").stdout.split()
    finally:
        agent.cli("rm", "-f", "web")


def test_env_workdir_user_hostname(agent: AgentProcess) -> None:
    result = agent.cli(
        "run", "--rm", "-e", "GREETING=hi there", "-w", "/tmp/work", "-u", "nobody",
        "--hostname", "box1", "busybox", "sh", "-c", 'echo "$GREETING|$(pwd)|$(id -u)|$(hostname)"',
    )  # fmt: skip
    assert result.stdout.strip() == "hi there|/tmp/work|65534|box1"


def test_container_sees_only_its_own_processes_as_pid_1(agent: AgentProcess) -> None:
    result = agent.cli("run", "--rm", "busybox", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    pid, count = result.stdout.split()
    assert pid == "1"
    assert int(count) <= 3  # sh, ls, grep


def test_volumes_read_write_and_read_only(agent: AgentProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    agent.cli("run", "--rm", "-v", f"{data}:/data", "busybox", "sh", "-c", "echo x > /data/f")
    assert (data / "f").read_text() == "x\n"
    denied = agent.cli(
        "run", "--rm", "-v", f"{data}:/data:ro", "busybox", "sh", "-c", "echo y > /data/f",
        check=False,
    )  # fmt: skip
    assert denied.returncode != 0
    assert (data / "f").read_text() == "x\n"


def test_network_modes(agent: AgentProcess) -> None:
    links = agent.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    bridged = agent.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "inet 10." in bridged
    host = agent.cli("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    assert "lo" in host and len(host.splitlines()) > 1


def test_stop_kills_after_grace_and_start_again(agent: AgentProcess) -> None:
    agent.cli("run", "-d", "--name", "sleeper", "busybox", "sleep", "1000")
    try:
        # sleep as pid 1 ignores SIGTERM, so stop must fall back to SIGKILL (137).
        assert agent.cli("stop", "-t", "1", "sleeper").stdout.strip() == "sleeper"
        state = _state(agent, "sleeper")
        assert state["Status"] == "exited" and state["ExitCode"] == 137
        agent.cli("start", "sleeper")
        assert _state(agent, "sleeper")["Running"] is True
        agent.cli("kill", "-s", "TERM", "sleeper")  # ignored by pid 1 without a handler
        agent.cli("kill", "sleeper")
        wait_for(lambda: _state(agent, "sleeper")["ExitCode"] == 137, what="kill")
    finally:
        agent.cli("rm", "-f", "sleeper")


def test_remove_running_needs_force(agent: AgentProcess) -> None:
    agent.cli("run", "-d", "--name", "busy", "busybox", "sleep", "1000")
    try:
        refused = agent.cli("rm", "busy", check=False)
        assert refused.returncode == 1
        assert "You cannot remove a running container" in refused.stderr
        assert _state(agent, "busy")["Running"] is True
    finally:
        agent.cli("rm", "-f", "busy")
    assert all(c["Names"] != "busy" for c in _ps_all(agent))


def test_names_rename_and_conflicts(agent: AgentProcess) -> None:
    agent.cli("run", "-d", "--name", "first", "busybox", "sleep", "1000")
    try:
        clash = agent.cli("run", "-d", "--name", "first", "busybox", "true", check=False)
        assert clash.returncode == 125
        assert "is already in use" in clash.stderr
        agent.cli("rename", "first", "second")
        assert _inspect(agent, "second")["Name"] == "/second"
        bad = agent.cli("run", "--name", "bad/name", "busybox", "true", check=False)
        assert bad.returncode == 125 and "Invalid container name" in bad.stderr
    finally:
        agent.cli("rm", "-f", "second", check=False)
        agent.cli("rm", "-f", "first", check=False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-m", "12x"], "--memory"),
        (["-m", "1k"], "Minimum memory limit"),
        (["-p", "80x"], "invalid published port"),
        (["-v", "rel/ative:/data"], "invalid characters for a local volume name"),
        (["--cpus", "abc"], "--cpus"),
        (["--network", "nope"], "network nope not found"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    agent: AgentProcess, flags: list[str], message: str
) -> None:
    before = len(_ps_all(agent))
    result = agent.cli("run", *flags, "busybox", "true", check=False)
    assert result.returncode == 125
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(_ps_all(agent)) == before


def test_port_already_allocated(agent: AgentProcess) -> None:
    agent.cli("run", "-d", "--name", "p1", "-p", "127.0.0.1:0:80", "busybox", "sleep", "1000")
    try:
        port = agent.cli("port", "p1", "80").stdout.strip().rsplit(":", 1)[1]
        clash = agent.cli(
            "run", "-d", "--name", "p2", "-p", f"127.0.0.1:{port}:80", "busybox", "true",
            check=False,
        )  # fmt: skip
        assert clash.returncode == 125
        assert "port is already allocated" in clash.stderr
    finally:
        agent.cli("rm", "-f", "p1", "p2", check=False)


def test_exec_runs_inside_the_container(agent: AgentProcess) -> None:
    agent.cli("run", "-d", "--name", "target", "-e", "FROM_RUN=1", "busybox", "sleep", "1000")
    try:
        assert agent.cli("exec", "target", "sh", "-c", "echo $FROM_RUN $(hostname)").stdout
        out = agent.cli("exec", "target", "cat", "/proc/1/cmdline").stdout
        assert out.startswith("sleep")
        assert agent.cli("exec", "target", "sh", "-c", "exit 3", check=False).returncode == 3
        echoed = agent.cli("exec", "-i", "target", "cat", input=b"piped in\n")
        assert echoed.stdout == b"piped in\n"
        missing = agent.cli("exec", "target", "nope", check=False)
        assert missing.returncode == 127
    finally:
        agent.cli("rm", "-f", "target")


def test_limits_reach_the_cgroup_and_stats(agent: AgentProcess) -> None:
    agent.cli(
        "run", "-d", "--name", "limited", "-m", "64m", "--pids-limit", "50", "--cpus", "0.5",
        "busybox", "sleep", "1000",
    )  # fmt: skip
    try:
        info = _inspect(agent, "limited")
        host_config = info["HostConfig"]
        assert isinstance(host_config, dict)
        assert host_config["Memory"] == 64 * 1024 * 1024
        pid = _state(agent, "limited")["Pid"]
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        assert "pyswarm-test-" in cgroups
        stats = json.loads(
            agent.cli("stats", "--no-stream", "--format", "json", "limited").stdout.splitlines()[0]
        )
        assert stats["Name"] == "limited"
        assert stats["MemUsage"].split("/")[1].strip() == "64MiB"
    finally:
        agent.cli("rm", "-f", "limited")


def test_agent_restart_keeps_containers(agent: AgentProcess, tmp_path: Path) -> None:
    agent.cli("run", "-d", "--name", "survivor", "busybox", "sleep", "1000")
    agent.cli(
        "run", "-d", "--name", "quitter", "-v", f"{tmp_path}:/data", "busybox",
        "sh", "-c", "while [ ! -e /data/go ]; do sleep 0.05; done; exit 5",
    )  # fmt: skip
    pid = _state(agent, "survivor")["Pid"]
    quitter = _state(agent, "quitter")["Pid"]
    assert isinstance(pid, int) and isinstance(quitter, int)
    agent.kill()  # kill -9: the agent dies, its containers must not
    os.kill(pid, 0)
    (tmp_path / "go").touch()  # the quitter exits while no agent is watching

    def gone() -> bool:
        try:
            os.kill(quitter, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, what="the quitter to exit")
    agent.start()
    try:
        state = _state(agent, "survivor")
        assert state["Running"] is True and state["Pid"] == pid
        quit_state = _state(agent, "quitter")
        assert quit_state["Status"] == "exited" and quit_state["ExitCode"] == 5
    finally:
        agent.cli("rm", "-f", "survivor", "quitter", check=False)


def test_what_the_agents_death_cut_short_is_settled_on_restart(agent: AgentProcess) -> None:
    # Found by the fault suite: an agent killed -9 inside a start left the record
    # CREATED while the supervisor ran the container, or left the cgroups of a start
    # that never ran, or of an exit it recorded but had not yet released; none was
    # ever cleaned.
    agent.cli("run", "-d", "--name", "carried", "busybox", "sleep", "1000")
    agent.cli("run", "--name", "cut", "busybox", "true")
    agent.cli("run", "--name", "ended", "busybox", "true")
    pid = _state(agent, "carried")["Pid"]
    ids = {name: str(_inspect(agent, name)["Id"]) for name in ("carried", "cut", "ended")}
    agent.kill()
    for name in ("carried", "cut"):  # saved before the agent heard how the start went
        record = agent.state_dir / "containers" / ids[name] / "container.pb"
        written = types_pb2.Container.FromString(record.read_bytes())
        written.state = types_pb2.Container.CREATED
        written.pid = 0
        record.write_bytes(written.SerializeToString())
    cgroups = CgroupManager(f"pyswarm-test-{agent.tag}")
    none = types_pb2.Resources()
    held = [d for name in ("cut", "ended") for d in cgroups.create(ids[name], none)]
    assert held and all(Path(d).is_dir() for d in held)  # as a start makes them
    agent.start()
    try:
        state = _state(agent, "carried")
        assert state["Running"] is True and state["Pid"] == pid
        assert _state(agent, "cut")["Status"] == "created"
        assert _state(agent, "ended")["Status"] == "exited"
        assert not any(Path(d).exists() for d in held)
        agent.cli("stop", "-t", "1", "carried")  # watched again: its exit is heard
        assert _state(agent, "carried")["Status"] == "exited"
    finally:
        agent.cli("rm", "-f", "carried", "cut", "ended", check=False)


def test_rm_leaves_nothing_behind_even_when_the_agent_dies_midway(agent: AgentProcess) -> None:
    containers = agent.state_dir / "containers"
    supervised = agent.state_dir / "supervisor" / "containers"
    for name in ("tidy", "interrupted"):
        agent.cli("run", "--name", name, "busybox", "true")
    tidy = str(_inspect(agent, "tidy")["Id"])
    interrupted = str(_inspect(agent, "interrupted")["Id"])
    assert (supervised / f"{tidy}.pb").exists()

    agent.cli("rm", "tidy")
    assert all(c["Names"] != "tidy" for c in _ps_all(agent))
    wait_for(
        lambda: (
            not any(p.name.endswith(tidy) for p in containers.iterdir())
            and not (supervised / f"{tidy}.pb").exists()
        ),
        what="the removed container's files",
    )

    # As if the agent died right after rm's rename, before the supervisor forgot and
    # before the directory was deleted: a restart finishes both.
    agent.kill()
    (containers / interrupted).rename(containers / f".removed-{interrupted}")
    agent.start()
    assert all(c["Names"] != "interrupted" for c in _ps_all(agent))
    assert not (containers / f".removed-{interrupted}").exists()
    assert not (supervised / f"{interrupted}.pb").exists()
