"""`pyswarm image build` and `image history` end to end, through a running agent."""

from __future__ import annotations

import json
import os
import signal
import tarfile
from pathlib import Path

import pytest

from tests.harness.agent_process import AgentProcess

pytestmark = pytest.mark.root

MULTI_STAGE = """\
# a comment
ARG BASE=busybox
FROM ${BASE} AS builder
ARG GREETING=hello
RUN mkdir -p /out && echo "$GREETING from the builder" > /out/greeting \\
    && echo building
COPY app.txt /out/

FROM $BASE
ENV APP_HOME=/srv/app MODE=test
WORKDIR $APP_HOME
COPY --from=builder /out/ ./
COPY --chown=nobody conf/ conf/
LABEL org.example.name="demo app" version=1
EXPOSE 8080 53/udp
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD cat /srv/app/greeting
USER nobody
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat greeting app.txt"]
"""


def _inspect(agent: AgentProcess, ref: str) -> dict[str, object]:
    info = json.loads(agent.cli("image", "inspect", ref).stdout)[0]
    assert isinstance(info, dict)
    return info


def _image_ids(agent: AgentProcess) -> set[str]:
    return set(agent.cli("images", "-q").stdout.split())


def _context(root: Path, dockerfile: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def multi_stage(tmp_path: Path) -> Path:
    return _context(
        tmp_path / "ctx",
        MULTI_STAGE,
        {"app.txt": "app v1\n", "conf/app.conf": "key=value\n", "conf/extra/x.conf": "x\n"},
    )


def test_multi_stage_build_config_and_run(agent: AgentProcess, multi_stage: Path) -> None:
    result = agent.cli("build", "-t", "demo:1", "-t", "demo:latest", str(multi_stage))
    out = result.stdout
    assert "Step 1/16 : ARG BASE=busybox" in out
    assert "Step 4/16 : RUN mkdir -p /out" in out
    assert " ---> Running in " in out
    assert "building\n" in out  # the RUN output is streamed back
    assert "Successfully tagged demo:1" in out and "Successfully tagged demo:latest" in out
    built = out.split("Successfully built ")[1].split()[0]
    info = _inspect(agent, "demo:1")
    assert str(info["Id"]).removeprefix("sha256:").startswith(built)
    config = info["Config"]
    assert isinstance(config, dict)
    assert "APP_HOME=/srv/app" in config["Env"] and "MODE=test" in config["Env"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "nobody"
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["Cmd"] == ["cat greeting app.txt"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert config["Labels"] == {"org.example.name": "demo app", "version": "1"}
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "cat /srv/app/greeting"],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 3,
    }
    run = agent.cli("run", "--rm", "--network", "none", "demo:1")
    assert run.stdout == "hello from the builder\napp v1\n"
    owners = agent.cli(
        "run", "--rm", "--network", "none", "demo:1", "stat -c '%U %a' conf/app.conf conf/extra"
    ).stdout
    assert owners.split("\n")[:2] == ["nobody 644", "nobody 755"]
    # intermediate images stay out of `images`, and a plain prune keeps them
    ids = _image_ids(agent)
    assert built in ids
    steps = agent.cli("history", "-q", "--no-trunc", "demo:1").stdout.split()
    step_ids = {step[7:19] for step in steps if step != "<missing>"}
    assert len(step_ids) == 11  # the 10 step images of the last stage and busybox
    assert step_ids & ids == {built, agent.cli("images", "-q", "busybox").stdout.strip()}
    agent.cli("image", "prune", "-f")
    rebuild = agent.cli("build", "-t", "demo:1", str(multi_stage)).stdout
    assert "Running in" not in rebuild
    assert rebuild.count(" ---> Using cache") == 13  # all but the 2 FROMs and the global ARG
    assert f"Successfully built {built}" in rebuild
    assert _image_ids(agent) == ids


def test_changed_file_rebuilds_from_its_copy(agent: AgentProcess, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt\nCMD cat /a.txt\n"
    )
    root = _context(tmp_path / "ctx", dockerfile, {"a.txt": "first\n"})
    first = agent.cli("build", "-t", "change:1", str(root)).stdout
    assert "Using cache" not in first
    (root / "a.txt").write_text("second\n")
    os.utime(root / "a.txt")
    second = agent.cli("build", "-t", "change:1", str(root)).stdout
    steps = second.split("Step ")[1:]
    assert "Using cache" in steps[1]  # RUN echo one
    assert "Using cache" not in steps[2] and "Using cache" not in steps[3]
    assert "second\n" in steps[3]
    assert agent.cli("run", "--rm", "change:1").stdout == "second\n"
    # touching a file without changing it keeps the cache
    os.utime(root / "a.txt", (1, 1))
    third = agent.cli("build", "-t", "change:1", str(root)).stdout
    assert third.count("Using cache") == 4


def test_run_deleting_a_base_file_leaves_a_whiteout(agent: AgentProcess, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox\n"
        "RUN rm /etc/group && rm -r /var/www && mkdir -p /home/fresh && touch /home/fresh/f\n"
        "RUN rm -r /home && mkdir /home && touch /home/only\n"
    )
    root = _context(tmp_path / "ctx", dockerfile, {})
    agent.cli("build", "-t", "deleted:1", str(root))
    check = "ls /etc/group /var/www 2>&1; ls -A /home"
    out = agent.cli("run", "--rm", "--network", "none", "deleted:1", "sh", "-c", check).stdout
    assert "/etc/group: No such file or directory" in out
    assert "/var/www: No such file or directory" in out
    assert out.strip().endswith("only")  # opaque dir: nothing from below shows through
    assert "fresh" not in out
    history = agent.cli("history", "deleted:1").stdout.splitlines()
    assert history[0].split()[:1] == ["IMAGE"]
    assert "rm -r /home" in history[1]


def test_from_scratch_with_a_static_binary(agent: AgentProcess, tmp_path: Path) -> None:
    root = _context(tmp_path / "ctx", "FROM scratch\nCOPY busybox /bin/busybox\n", {})
    (root / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "busybox").chmod(0o755)
    agent.cli("build", "-t", "tiny:1", str(root))
    info = _inspect(agent, "tiny:1")
    rootfs = info["RootFS"]
    assert isinstance(rootfs, dict) and len(rootfs["Layers"]) == 1
    out = agent.cli("run", "--rm", "--network", "none", "tiny:1", "/bin/busybox", "echo", "hi")
    assert out.stdout == "hi\n"


def test_dockerignore_excludes(agent: AgentProcess, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nCOPY . /ctx/\nCMD find /ctx -type f\n"
    files = {
        ".dockerignore": "# comment\n*.log\nsecret/\n**/tmp\n!keep.log\nDockerfile\n",
        "a.txt": "a",
        "b.log": "b",
        "keep.log": "k",
        "secret/key": "s",
        "sub/tmp/t": "t",
        "sub/ok.txt": "ok",
    }
    root = _context(tmp_path / "ctx", dockerfile, files)
    agent.cli("build", "-t", "ignored:1", str(root))
    found = set(agent.cli("run", "--rm", "--network", "none", "ignored:1").stdout.split())
    assert found == {"/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/a.txt", "/ctx/keep.log",
                     "/ctx/sub/ok.txt"}  # fmt: skip


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM busybox\nCOPY ../outside /x\n", "outside the build context"),
        ("FROM busybox\nCOPY /etc/passwd /x\n", "absolute source path"),
        ("FROM busybox\nCOPY link/passwd /x\n", "symlink pointing outside"),
        ("FROM busybox\nADD http://example.invalid/f /x\n", "URL is not supported"),
    ],
)
def test_path_escapes_are_refused(
    agent: AgentProcess, tmp_path: Path, dockerfile: str, message: str
) -> None:
    root = _context(tmp_path / "ctx", dockerfile, {})
    (root / "link").symlink_to("/etc")
    before = _image_ids(agent)
    result = agent.cli("build", "-t", "escape:1", str(root), check=False)
    assert result.returncode != 0
    assert message in result.stderr and "Dockerfile:2:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "escape" not in agent.cli("images").stdout
    assert _image_ids(agent) == before


def test_bad_dockerfile_names_the_line_and_creates_nothing(
    agent: AgentProcess, tmp_path: Path
) -> None:
    root = _context(
        tmp_path / "ctx", "FROM busybox\nRUN echo a\n\n# c\nRUN echo \\\n b\nRUNN x\n", {}
    )
    before = _image_ids(agent)
    result = agent.cli("build", "-t", "bad:1", str(root), check=False)
    assert result.returncode != 0
    assert "Dockerfile:7: unknown instruction: RUNN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Step" not in result.stdout
    assert _image_ids(agent) == before


def test_failing_run_names_the_line_and_removes_its_container(
    agent: AgentProcess, tmp_path: Path
) -> None:
    root = _context(tmp_path / "ctx", "FROM busybox\nENV A=1\nRUN echo before\nRUN false\n", {})
    result = agent.cli("build", "-t", "failing:1", str(root), check=False)
    assert result.returncode != 0
    assert "Dockerfile:4: The command '/bin/sh -c false' returned a non-zero code: 1" in (
        result.stderr
    )
    assert "failing" not in agent.cli("images").stdout
    assert agent.cli("ps", "-a", "-q").stdout.strip() == ""


def test_history_of_a_build_and_of_an_imported_image(agent: AgentProcess, tmp_path: Path) -> None:
    root = _context(tmp_path / "ctx", "FROM busybox\nENV X=1\nRUN echo hi > /hi\n", {})
    built = agent.cli("build", "-q", "-t", "hist:1", str(root)).stdout.strip()
    assert built.startswith("sha256:")
    lines = agent.cli("history", "hist:1").stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].startswith(built[7:19]) and "echo hi > /hi" in lines[1]
    assert "ENV X=1" in lines[2]
    assert "pyswarm image import" in lines[3]
    ids = agent.cli("history", "-q", "--no-trunc", "hist:1").stdout.split()
    assert ids[0] == built and len(ids) == 3
    busybox = agent.cli("history", "--format", "json", "busybox").stdout.splitlines()
    assert len(busybox) == 1 and json.loads(busybox[0])["CreatedBy"] == "pyswarm image import"


def test_build_args_and_unknown_base(agent: AgentProcess, tmp_path: Path) -> None:
    dockerfile = 'FROM busybox\nARG WHO=nobody\nRUN echo "hi $WHO" > /who\nCMD cat /who\n'
    root = _context(tmp_path / "ctx", dockerfile, {})
    out = agent.cli("build", "--build-arg", "WHO=you", "--build-arg", "EXTRA=1", "-t", "args:1",
                    str(root)).stdout  # fmt: skip
    assert "[Warning] One or more build-args ['EXTRA'] were not consumed" in out
    assert agent.cli("run", "--rm", "--network", "none", "args:1").stdout == "hi you\n"
    missing = _context(tmp_path / "other", "FROM no-such-image:1\n", {})
    result = agent.cli("build", str(missing), check=False)
    assert (
        result.returncode != 0 and "Dockerfile:1: No such image: no-such-image:1" in result.stderr
    )


def test_add_unpacks_archives_and_copy_takes_wildcards(agent: AgentProcess, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox\n"
        "ADD bundle.tar.gz /opt/\n"
        "ADD plain.txt /opt/plain.txt\n"
        'COPY ["with space.txt", "/opt/spaced/"]\n'
        "COPY *.cfg /etc/app/\n"
        "COPY --from=busybox:latest /etc/passwd /etc/app/from-image\n"
        "CMD find /opt /etc/app -type f\n"
    )
    root = _context(
        tmp_path / "ctx",
        dockerfile,
        {"plain.txt": "p", "with space.txt": "s", "a.cfg": "a", "b.cfg": "b", "c.txt": "c"},
    )
    payload = tmp_path / "payload"
    (payload / "lib").mkdir(parents=True)
    (payload / "lib" / "x.so").write_text("x")
    with tarfile.open(root / "bundle.tar.gz", "w:gz") as tar:
        tar.add(payload / "lib", arcname="lib")
    agent.cli("build", "-t", "adds:1", str(root))
    found = set(agent.cli("run", "--rm", "--network", "none", "adds:1").stdout.split())
    assert found == {"/opt/lib/x.so", "/opt/plain.txt", "/opt/spaced/with", "space.txt",
                     "/etc/app/a.cfg", "/etc/app/b.cfg", "/etc/app/from-image"}  # fmt: skip


def test_cache_survives_an_agent_restart(agent: AgentProcess, tmp_path: Path) -> None:
    root = _context(tmp_path / "ctx", "FROM busybox\nRUN echo kept > /kept\n", {})
    first = agent.cli("build", "-q", "-t", "restart:1", str(root)).stdout.strip()
    agent.kill(signal.SIGTERM)
    agent.start()
    again = agent.cli("build", "-t", "restart:1", str(root)).stdout
    assert "Using cache" in again and "Running in" not in again
    assert f"Successfully built {first[7:19]}" in again


def test_run_sees_env_workdir_user_and_network(agent: AgentProcess, tmp_path: Path) -> None:
    dockerfile = (
        "FROM busybox\n"
        "ENV GREETING=hi\n"
        "WORKDIR /work/here\n"
        "USER nobody\n"
        'RUN echo "$GREETING $(id -u) $(pwd) $(ls /sys/class/net)" > /tmp/facts\n'
        "CMD cat /tmp/facts\n"
    )
    root = _context(tmp_path / "ctx", dockerfile, {})
    agent.cli("build", "--network", "none", "-t", "facts:1", str(root))
    facts = agent.cli("run", "--rm", "--network", "none", "facts:1").stdout
    assert facts == "hi 65534 /work/here lo\n"
    history = agent.cli("history", "--no-trunc", "--format", "json", "facts:1").stdout
    rows = [json.loads(line) for line in history.splitlines()]
    workdir = next(row for row in rows if "WORKDIR" in row["CreatedBy"])
    user = next(row for row in rows if "USER nobody" in row["CreatedBy"])
    assert workdir["Size"] == "0B" and user["Size"] == "0B"


def test_cli_rejects_a_missing_context(agent: AgentProcess, tmp_path: Path) -> None:
    result = agent.cli("build", str(tmp_path / "nowhere"), check=False)
    assert result.returncode != 0 and "unable to prepare context" in result.stderr


def test_short_forms_exist() -> None:
    from pyswarm.cli.main import COMMANDS

    assert COMMANDS["build"] == ("pyswarm.cli.build", "build")
    assert COMMANDS["history"] == ("pyswarm.cli.image", "history")
