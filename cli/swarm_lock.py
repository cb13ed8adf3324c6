"""`swarm update --autolock`, `swarm unlock` and `swarm unlock-key`: the managers' lock.

With autolock on, a manager that restarts keeps its data key locked under the unlock
key and serves nothing until `swarm unlock` gives it the key (read from stdin or a
prompt, never from the command line, so it stays out of process listings and shell
history). The CLI reaches a locked manager as any other: its main port, with the
client certificate of the current context.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from pyswarm.cli.parse import CliInputError

UNLOCK_KEY_ADVICE = (
    "To unlock a swarm manager after it restarts, run the `pyswarm swarm unlock`\n"
    "command and provide the following key:\n\n    {key}\n\n"
    "Remember to store this key in a password manager, since without it you\n"
    "will not be able to restart the manager."
)


def print_unlock_key(key: str) -> None:
    print(UNLOCK_KEY_ADVICE.format(key=key), flush=True)


def set_autolock(enabled: bool) -> None:
    from pyswarm.common.manager_client import manager_unlock
    from pyswarm.proto import seal_pb2

    answer = manager_unlock().UpdateAutolock(seal_pb2.UnlockAutolockRequest(autolock=enabled))
    print("Swarm updated.")
    if answer.autolock:
        print_unlock_key(answer.unlock_key)


def read_unlock_key() -> str:
    if sys.stdin.isatty():
        import getpass

        text = getpass.getpass("Please enter unlock key: ")
    else:
        text = sys.stdin.readline()
    text = text.strip()
    if not text:
        raise CliInputError("no unlock key given: type it, or pipe it on stdin", field="key")
    return text


def unlock() -> None:
    """Unlock a locked manager (the key is read from stdin or a prompt)."""
    from pyswarm.common.manager_client import manager_unlock
    from pyswarm.proto import seal_pb2

    key = read_unlock_key()
    manager_unlock().Unlock(seal_pb2.UnlockRequest(unlock_key=key))


def unlock_key(
    rotate: Annotated[bool, typer.Option("--rotate", help="Rotate the unlock key")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only the key")] = False,
) -> None:
    """Show (or rotate) the unlock key of a cluster with autolock on."""
    from pyswarm.common.manager_client import manager_unlock
    from pyswarm.proto import seal_pb2

    answer = manager_unlock().GetUnlockKey(seal_pb2.UnlockKeyRequest(rotate=rotate))
    if quiet:
        print(answer.unlock_key)
        return
    if rotate:
        print("Successfully rotated manager unlock key.\n")
    print_unlock_key(answer.unlock_key)
