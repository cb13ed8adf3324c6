"""Where `pyswarm join` reads its join token from, so that it need not be an argument.

A process's arguments are world-readable (/proc/PID/cmdline, `ps`), and a join token
admits a node to the cluster. In order: `--token-file FILE`, `--token -` (one line on
standard input), `--token TOKEN` (docker's form, kept for compatibility), then the
environment variable `PYSWARM_JOIN_TOKEN` (a process's environment is readable only by
its owner and root). One of them is required; a flag wins over the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from pyswarm.cli.parse import CliInputError

__all__ = ["JOIN_TOKEN_ENV", "STDIN", "read_join_token"]

JOIN_TOKEN_ENV = "PYSWARM_JOIN_TOKEN"
STDIN = "-"
#: A token is one short line; a larger input is not a token file.
MAX_TOKEN_BYTES = 4096


def _one_line(text: str, source: str, field: str) -> str:
    token = text.strip()
    if not token:
        raise CliInputError(f"{source} holds no join token", field=field)
    if "\n" in token or len(token) > MAX_TOKEN_BYTES:
        raise CliInputError(f"{source} must hold the join token alone, on one line", field=field)
    return token


def _from_file(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as err:
        raise CliInputError(
            f"--token-file: cannot read {path}: {err.strerror or err}", field="--token-file"
        ) from err
    return _one_line(data.decode(errors="replace"), f"--token-file {path}", "--token-file")


def read_join_token(
    token: str | None,
    token_file: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> str:
    """The join token from the flags, standard input or the environment; CliInputError
    names the source at fault, or says how to give one when none is given."""
    if token is not None and token_file is not None:
        raise CliInputError("give either --token or --token-file, not both", field="--token")
    if token_file is not None:
        return _from_file(token_file)
    if token == STDIN:
        line = (stdin or sys.stdin).readline(MAX_TOKEN_BYTES + 1)
        return _one_line(line, "standard input (--token -)", "--token")
    if token is not None:
        return _one_line(token, "--token", "--token")
    value = (os.environ if environ is None else environ).get(JOIN_TOKEN_ENV)
    if value is not None:
        return _one_line(value, f"${JOIN_TOKEN_ENV}", JOIN_TOKEN_ENV)
    raise CliInputError(
        f"a join token is needed: --token-file FILE, ${JOIN_TOKEN_ENV}, or --token - (stdin)",
        field="--token",
    )
