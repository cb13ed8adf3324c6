"""Loading compose files as `stack deploy` reads them: YAML errors with line and column,
validation naming each path, normalised long forms, merging of several files, and the
checks that need the whole file set. Nothing here touches a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarm.stack.compose.loader import ComposeProject, ComposeSource, load_project
from pyswarm.stack.errors import ComposeError, ComposeErrors


def load(tmp_path: Path, *texts: str, env: dict[str, str] | None = None) -> ComposeProject:
    sources = [ComposeSource(f"f{n}.yml", text, tmp_path) for n, text in enumerate(texts)]
    return load_project(sources, env or {})


def errors_of(tmp_path: Path, *texts: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ComposeError) as err:
        load(tmp_path, *texts, env=env)
    found = err.value.errors if isinstance(err.value, ComposeErrors) else [err.value]
    return [e.message for e in found]


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    (message,) = errors_of(tmp_path, "services:\n  web:\n    image: [busybox\n")
    assert message.startswith("f0.yml:"), message
    assert ":4:" in message or ":3:" in message
    (message,) = errors_of(tmp_path, "services:\n  web:\n    image: a\n    image: b\n")
    assert "f0.yml:4:5" in message and "already defined" in message


def test_validation_names_each_path(tmp_path: Path) -> None:
    text = """
services:
  web:
    image: busybox
    deploy:
      replicas: two
      mode: sideways
    stop_grace_period: ten
    unknown_key: 1
    ports:
      - target: 80
        protocol: sctp
volumes:
  data:
    driver_opts: [1]
"""
    messages = errors_of(tmp_path, text)
    assert 'f0.yml: services.web.deploy.replicas: must be an integer, got "two"' in messages
    assert any(m.startswith("f0.yml: services.web.deploy.mode: must be one of") for m in messages)
    assert any("services.web.stop_grace_period: must be a duration" in m for m in messages)
    assert "f0.yml: services.web.unknown_key: unknown key" in messages
    assert any("services.web.ports[0].protocol" in m for m in messages)
    assert any("volumes.data.driver_opts: must be a mapping" in m for m in messages)


def test_interpolated_values_are_cast(tmp_path: Path) -> None:
    text = (
        "services:\n  web:\n    image: busybox\n    deploy:\n      replicas: ${N}\n    tty: ${T}\n"
    )
    project = load(tmp_path, text, env={"N": "3", "T": "true"})
    assert project.services["web"]["deploy"]["replicas"] == 3
    assert project.services["web"]["tty"] is True
    messages = errors_of(tmp_path, text, env={"N": "two", "T": "true"})
    assert messages == ['f0.yml: services.web.deploy.replicas: must be an integer, got "two"']


def test_dotenv_beside_the_first_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=1.36\nN=2\n")
    project = load(tmp_path, "services:\n  web:\n    image: busybox:${TAG}\n", env={"N": "5"})
    assert project.services["web"]["image"] == "busybox:1.36"


def test_ignored_keys_are_named_in_one_warning(tmp_path: Path) -> None:
    text = """
services:
  web:
    image: busybox
    build: .
    container_name: x
    networks:
      back:
        ipv4_address: 10.0.0.5
networks:
  back:
"""
    project = load(tmp_path, text)
    warning = project.warning()
    assert warning.startswith("Ignoring unsupported options: ")
    for key in ("services.web.build", "services.web.container_name",
                "services.web.networks.back.ipv4_address"):  # fmt: skip
        assert key in warning
    assert "\n" not in warning


def test_short_forms_become_long_forms(tmp_path: Path) -> None:
    text = """
services:
  web:
    image: busybox
    command: sh -c 'echo "hi there"'
    environment: [A=1, B]
    labels: {n: 42, b: true}
    ports: ["8080:80", "9000-9001:7000-7001/udp", "127.0.0.1::53", 5000]
    volumes: ["data:/data:ro", "./site:/www", "/cache"]
    networks: [back]
    depends_on: [db]
    healthcheck: {test: curl -f localhost}
    ulimits: {nofile: 1024, nproc: {soft: 10, hard: 20}}
    extra_hosts: {db.local: 10.0.0.9}
    dns: 10.0.0.53
  db:
    image: busybox
    healthcheck: {disable: true}
networks: {back: {}}
volumes: {data: {}}
"""
    web = load(tmp_path, text).services["web"]
    assert web["command"] == ["sh", "-c", 'echo "hi there"']
    assert web["environment"] == {"A": "1", "B": None}
    assert web["labels"] == {"n": "42", "b": "true"}
    assert web["ports"] == [
        {"target": 80, "published": 8080, "protocol": "tcp", "mode": "ingress"},
        {"target": 7000, "published": 9000, "protocol": "udp", "mode": "ingress"},
        {"target": 7001, "published": 9001, "protocol": "udp", "mode": "ingress"},
        {"target": 53, "protocol": "tcp", "mode": "ingress", "host_ip": "127.0.0.1"},
        {"target": 5000, "protocol": "tcp", "mode": "ingress"},
    ]
    assert web["volumes"] == [
        {"type": "volume", "source": "data", "target": "/data", "read_only": True},
        {"type": "bind", "source": str((tmp_path / "site").resolve()), "target": "/www"},
        {"type": "volume", "target": "/cache"},
    ]
    assert web["networks"] == {"back": {}}
    assert web["depends_on"] == {"db": {"condition": "service_started"}}
    assert web["healthcheck"]["test"] == ["CMD-SHELL", "curl -f localhost"]
    assert web["ulimits"] == {"nofile": {"soft": 1024, "hard": 1024},
                              "nproc": {"soft": 10, "hard": 20}}  # fmt: skip
    assert web["extra_hosts"] == ["db.local:10.0.0.9"]
    assert web["dns"] == ["10.0.0.53"]
    assert load(tmp_path, text).services["db"]["healthcheck"] == {"test": ["NONE"]}


def test_later_files_override_earlier_ones(tmp_path: Path) -> None:
    base = """
services:
  web:
    image: busybox:1
    command: [httpd, -f]
    environment: {A: "1", B: "1"}
    ports: ["8080:80"]
    volumes: ["data:/data"]
    dns: [10.0.0.1]
    deploy: {replicas: 2, labels: {tier: web}}
volumes: {data: {}}
"""
    override = """
services:
  web:
    image: busybox:2
    command: [sleep, "1"]
    environment: {B: "2"}
    ports: ["8081:81"]
    volumes: ["other:/data"]
    dns: [10.0.0.2]
    deploy: {replicas: 3}
volumes: {other: {}}
"""
    web = load(tmp_path, base, override).services["web"]
    assert web["image"] == "busybox:2" and web["command"] == ["sleep", "1"]
    assert web["environment"] == {"A": "1", "B": "2"}
    assert [p["published"] for p in web["ports"]] == [8080, 8081]
    assert web["volumes"] == [{"type": "volume", "source": "other", "target": "/data"}]
    assert web["dns"] == ["10.0.0.1", "10.0.0.2"]
    assert web["deploy"] == {"replicas": 3, "labels": {"tier": "web"}}


def test_whole_set_checks_name_what_is_wrong(tmp_path: Path) -> None:
    text = """
services:
  a:
    image: busybox
    networks: [nowhere]
    volumes: ["ghost:/x"]
    secrets: [missing]
    configs: [absent]
    depends_on: [b, nobody]
    ports: ["80:80"]
  b:
    image: busybox
    depends_on: [c]
    ports: ["80:8080"]
  c:
    image: busybox
    depends_on: [a]
  d:
    build: .
secrets:
  nofile: {file: ./does-not-exist}
"""
    messages = errors_of(tmp_path, text)
    expected = [
        'services.a.networks: network "nowhere" is not defined in top-level networks',
        'services.a.volumes[0]: volume "ghost" is not defined in top-level volumes',
        'services.a.secrets[0]: secret "missing" is not defined in top-level secrets',
        'services.a.configs[0]: config "absent" is not defined in top-level configs',
        'services.a.depends_on: depends on undefined service "nobody"',
        "services: dependency cycle: a -> b -> c -> a",
        "services.b.ports: port 80/tcp is already published by service a",
        "services.d: no image: a stack deploys images (build is ignored by stacks)",
    ]
    for line in expected:
        assert line in messages, (line, messages)
    assert any(m.startswith("secrets.nofile: no such file") for m in messages)


def test_secret_files_over_the_limit_are_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (500 * 1024 + 1))
    text = "services:\n  a:\n    image: busybox\nsecrets:\n  big: {file: ./big}\n"
    assert errors_of(tmp_path, text) == ["secrets.big: file is larger than 500 KiB"]


def test_stack_config_prints_the_merged_interpolated_file(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "a.yml").write_text("services:\n  web:\n    image: busybox:${TAG}\n")
    (tmp_path / "b.yml").write_text("services:\n  web:\n    deploy: {replicas: 3}\n")
    command = [sys.executable, "-m", "pyswarm.cli.main", "stack", "config"]
    env = {**os.environ, "TAG": "2"}
    done = subprocess.run(
        [*command, "-c", str(tmp_path / "a.yml"), "-c", str(tmp_path / "b.yml")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "image: busybox:2" in done.stdout and "replicas: 3" in done.stdout
    missing = subprocess.run(
        [*command, "-c", str(tmp_path / "missing.yml")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode != 0 and "cannot read compose file" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
