"""The committed protobuf code must match what the .proto sources generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_task_states_only_move_forward() -> None:
    from pyswarm.proto import types_pb2

    order = [
        "NEW", "PENDING", "ASSIGNED", "ACCEPTED", "PREPARING", "STARTING", "RUNNING",
        "COMPLETE", "SHUTDOWN", "FAILED", "REJECTED", "REMOVE", "ORPHANED",
    ]  # fmt: skip
    values = [types_pb2.TaskState.Value(name) for name in order]
    assert values == sorted(values)
