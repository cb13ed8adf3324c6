"""End-to-end: a service reads a secret and a config in the lab, through the CLI, and
the secret's bytes are on no host's disk (agents' and manager's state dirs, searched).

The containers print the config as it is and the secret upper-cased (their logs are on
the disk: the secret itself must not be), with the secret file's mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.harness.lab import NODES, LabCluster
from tests.waiting import wait_for

pytestmark = pytest.mark.root

CONVERGE = 90.0  # deadline for starts on a loaded CI machine (not a speed goal)
SECRET = "zebra-quokka-s3cret-of-the-lab"
CONFIG = "listen-port 8080 from the lab config"


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory) / name
            if not path.is_file() or path.is_symlink():
                continue  # sockets, fifos, links
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue  # removed meanwhile
    return found


def test_a_service_reads_its_secret_and_config_and_no_disk_holds_the_secret(
    lab: LabCluster, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    config_file = tmp_path / "app.conf"
    config_file.write_text(CONFIG)
    secret_id = lab.cli("secret", "create", "--label", "env=lab", "lab-pass", str(secret_file))
    lab.cli("config", "create", "lab-conf", str(config_file))
    try:
        listed = lab.json_lines("secret", "ls", "--format", "json", "--filter", "label=env=lab")
        assert [(row["ID"], row["Name"]) for row in listed] == [(secret_id.strip(), "lab-pass")]
        assert SECRET not in lab.cli("secret", "inspect", "lab-pass")
        missing = lab.run("service", "create", "-d", "--name", "x", "--secret", "nope", "busybox")
        assert missing.returncode != 0 and "secret not found: nope" in missing.stderr
        lab.cli(
            "service", "create", "-d", "--name", "reader", "--replicas", "3",
            "--secret", "source=lab-pass,target=pass,mode=0400", "--config", "lab-conf",
            "busybox", "sh", "-c",
            "stat -c 'mode %a' /run/secrets/pass; tr a-z A-Z < /run/secrets/pass; echo;"
            " cat /lab-conf; echo; exec sleep 1000",
        )  # fmt: skip
        wait_for(
            lambda: lab.spread("reader") == dict.fromkeys(NODES, 1),
            timeout=CONVERGE,
            what="one reader task per host",
        )

        def every_task_read_them() -> str | None:
            out = lab.cli("service", "logs", "--no-task-ids", "reader")
            lines = [line.split("| ", 1)[-1] for line in out.splitlines()]
            wanted = ["mode 400", SECRET.upper(), CONFIG]
            return out if all(lines.count(w) == 3 for w in wanted) else None

        wait_for(every_task_read_them, timeout=CONVERGE, what="3 tasks printing both")
        refused = lab.run("secret", "rm", "lab-pass")
        assert refused.returncode != 0 and "reader" in refused.stderr
        state = lab.state()
        roots = [Path(node.state_dir) for node in state.nodes] + [Path(state.manager_state_dir)]
        assert all(root.is_dir() for root in roots)
        leaks = [path for root in roots for path in files_holding(root, SECRET.encode())]
        assert leaks == []
        # The search sees what is there: the containers' logs hold the config they printed.
        logged = [path for root in roots for path in files_holding(root, CONFIG.encode())]
        assert len(logged) >= 3
    finally:
        lab.run("service", "rm", "reader")
        # The tasks shut down first: the removal is refused until they have.
        wait_for(
            lambda: lab.run("secret", "rm", "lab-pass").returncode == 0,
            timeout=CONVERGE,
            what="the secret removed once unused",
        )
        lab.cli("config", "rm", "lab-conf")
