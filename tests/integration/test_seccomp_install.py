"""Installing a compiled filter in the container's child, through the supervisor: the
order that lets it work with and without no_new_privs, for root, another user and a
user-namespaced container."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pyswarm.agent.runtime.container.capabilities import DEFAULT_CAPABILITIES
from pyswarm.agent.runtime.container.logs import read_log
from pyswarm.agent.runtime.container.userns import default_id_map, prepare_writable_layer
from pyswarm.agent.runtime.seccomp import seccomp_filter
from tests.harness.supervisor import SupervisorHarness

pytestmark = pytest.mark.root

STATUS = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
DEFAULT_FILTER = seccomp_filter("", DEFAULT_CAPABILITIES)


def _run(sv: SupervisorHarness, script: str, **fields: Any) -> tuple[int, str]:
    """Run `sh -c script` in a fresh container: (exit code, stdout and stderr)."""
    spec = sv.spec("sh", "-c", script, **fields)
    if spec.uid_map:
        prepare_writable_layer(
            spec.rootfs.upper_dir, spec.rootfs.work_dir, spec.uid_map, spec.gid_map
        )

    async def scenario() -> int:
        await sv.client.create(spec)
        return (await sv.client.wait(spec.id)).exit_code

    code = asyncio.run(scenario())
    return code, "".join(line.data.decode() for line in read_log(Path(spec.log_path)))


def _status(text: str) -> dict[str, str]:
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields}


def test_root_without_no_new_privs_gets_the_filter(supervisor: SupervisorHarness) -> None:
    code, out = _run(supervisor, STATUS, seccomp_filter=DEFAULT_FILTER)
    assert code == 0
    assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "0"}


def test_other_user_without_no_new_privs_gets_the_filter_before_losing_cap_sys_admin(
    supervisor: SupervisorHarness,
) -> None:
    # Installed after setuid, without no_new_privs, the kernel would refuse it (EACCES).
    code, out = _run(supervisor, STATUS, seccomp_filter=DEFAULT_FILTER, user="nobody")
    assert code == 0, out
    assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "0"}


def test_other_user_with_no_new_privs_gets_both(supervisor: SupervisorHarness) -> None:
    code, out = _run(
        supervisor, STATUS, seccomp_filter=DEFAULT_FILTER, user="nobody", no_new_privileges=True
    )
    assert code == 0, out
    assert _status(out) == {"Seccomp": "2", "NoNewPrivs": "1"}


def test_user_namespaced_container_gets_the_filter(supervisor: SupervisorHarness) -> None:
    code, out = _run(
        supervisor,
        f"{STATUS}; unshare -Ur id 2>&1",
        seccomp_filter=DEFAULT_FILTER,
        uid_map=default_id_map(),
        gid_map=default_id_map(),
    )
    assert code != 0  # unshare's
    assert _status(out)["Seccomp"] == "2"
    assert "Operation not permitted" in out


def test_no_filter_means_seccomp_off(supervisor: SupervisorHarness) -> None:
    code, out = _run(supervisor, STATUS)
    assert code == 0
    assert _status(out) == {"Seccomp": "0", "NoNewPrivs": "0"}


def test_profile_errno_ret_is_what_the_call_fails_with(supervisor: SupervisorHarness) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    program = seccomp_filter(json.dumps(profile), DEFAULT_CAPABILITIES)
    code, out = _run(supervisor, "mkdir /x 2>&1; echo rc=$?", seccomp_filter=program)
    assert code == 0
    assert "Permission denied" in out  # EACCES, not the default EPERM
    assert "rc=1" in out
