"""The last steps of a container's process (or an exec'd one): user, working
directory, rlimits, capabilities, no_new_privs, seccomp, every other descriptor closed,
then execve, in runc's order. Nothing here returns: it execs or raises InitFailure."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Sequence
from typing import NoReturn

from pyswarm.agent.runtime import syscalls as sc
from pyswarm.agent.runtime.container import pid_one
from pyswarm.agent.runtime.container.capabilities import capability_mask, last_capability
from pyswarm.agent.runtime.container.errors import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME_FAILURE,
)
from pyswarm.agent.runtime.container.init_steps import (
    MAX_FD,
    InitFailure,
    report_failure,
    step,
)
from pyswarm.agent.runtime.container.process_settings import ProcessSettings, set_rlimits
from pyswarm.common.users import UserLookupError, resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _lookup(program: str, path_value: str) -> str:
    if "/" in program:
        return program
    not_executable = ""
    for directory in path_value.split(":"):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            not_executable = not_executable or candidate
    if not_executable:
        raise InitFailure(EXIT_NOT_EXECUTABLE, f'exec: "{program}": permission denied')
    raise InitFailure(EXIT_NOT_FOUND, f'exec: "{program}": executable file not found in $PATH')


def _with_defaults(env: Sequence[str], home: str) -> list[str]:
    result = list(env)
    names = {item.partition("=")[0] for item in result}
    if "PATH" not in names:
        result.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOME" not in names:
        result.append(f"HOME={home}")
    return result


def _drop_capabilities(keep: int) -> None:
    for number in range(last_capability() + 1):
        if not keep >> number & 1:
            sc.prctl(sc.PR_CAPBSET_DROP, number)


def become_process(
    args: Sequence[str],
    env: Sequence[str],
    cwd: str,
    user: str,
    capabilities: Sequence[str],
    channel: socket.socket,
    *,
    seccomp_filter: bytes = b"",
    no_new_privileges: bool = False,
    settings: ProcessSettings = ProcessSettings(),
) -> NoReturn:
    """User, cwd, capabilities, no_new_privs, seccomp, close fds, execve: the last steps.

    no_new_privs only when asked (docker's --security-opt no-new-privileges): without
    it setuid programs still gain privileges, bounded by the capability set. The
    seccomp filter goes on as runc orders it: with no_new_privs, as the very last step
    before execve; without, while this process still holds CAP_SYS_ADMIN (the kernel
    requires one or the other), so the filter must allow the steps after it (setuid,
    capset, prctl, close_range: docker's default profile does).
    """
    if not args:
        raise InitFailure(EXIT_RUNTIME_FAILURE, "no command specified")
    try:
        who = resolve_user(user, extra_groups=settings.groups)
    except UserLookupError as err:
        raise InitFailure(EXIT_RUNTIME_FAILURE, str(err)) from err
    environment = _with_defaults(env, who.home)
    path_value = next((e[5:] for e in reversed(environment) if e.startswith("PATH=")), DEFAULT_PATH)
    with step(f"working directory {cwd or '/'}"):
        os.makedirs(cwd or "/", exist_ok=True)
        os.chdir(cwd or "/")
    keep = capability_mask(capabilities)
    with step("ulimit"):
        set_rlimits(settings.rlimits)  # while root: raising a hard limit needs it
    if seccomp_filter and not no_new_privileges:
        with step("install the seccomp filter"):
            sc.install_seccomp_filter(seccomp_filter)
    with step("drop capabilities"):
        _drop_capabilities(keep)
    with step(f"set user {user or 'root'}"):
        os.setgroups(list(who.groups))
        os.setgid(who.gid)
        os.setuid(who.uid)
    with step("set capabilities"):
        if who.uid == 0:
            sc.capset(keep, keep, 0)
        try:
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
    if no_new_privileges:
        with step("no_new_privs"):
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    program = _lookup(args[0], path_value)
    keep_fd = channel.fileno()
    # The init channel is CLOEXEC: a successful execve closes it, which tells the
    # supervisor the program runs. Everything else goes now.
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, MAX_FD)
    if seccomp_filter and no_new_privileges:
        with step("install the seccomp filter"):
            sc.install_seccomp_filter(seccomp_filter)
    if settings.init:

        def start() -> NoReturn:
            try:
                _execve(program, args, environment)
            except InitFailure as failure:
                report_failure(channel, failure.code, failure.message)

        pid_one.run_as_init(start, list(args), channel_fd=keep_fd, tty=settings.tty)
    _execve(program, args, environment)


def _execve(program: str, args: Sequence[str], environment: Sequence[str]) -> NoReturn:
    try:
        os.execve(program, list(args), _env_dict(environment))
    except OSError as err:
        code = EXIT_NOT_FOUND if err.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
        if err.errno not in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.EISDIR):
            code = EXIT_RUNTIME_FAILURE
        reason = (err.strerror or str(err)).lower()
        raise InitFailure(code, f'exec: "{args[0]}": {reason}') from err


def _env_dict(environment: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in environment:
        key, _, value = item.partition("=")
        if key:
            result[key] = value
    return result
