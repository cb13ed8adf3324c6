"""docker's seccomp profile format (the JSON `--security-opt seccomp=FILE` takes).

Read: defaultAction, defaultErrnoRet, syscalls[] with names (or the older name), action,
errnoRet, args[{index, value, valueTwo, op}], includes/excludes {caps, arches,
minKernel}. Kept for docker compatibility and checked, but not needed by a filter for
the native ABI only: architectures, archMap, flags, comment.

Refused, each with a one-line error naming it: text that is not JSON (line and column),
a syscall name no Linux ABI has (docker's runtime would skip it silently; a typo in a
security policy should not pass unseen), an unknown action or operator, an argument
index outside 0-5, SCMP_ACT_NOTIFY (it needs a listener we do not run).
"""

from __future__ import annotations

import errno
import json
from typing import Any

from pyswarm.agent.runtime.container.capabilities import normalize
from pyswarm.agent.runtime.seccomp.errors import ProfileError
from pyswarm.agent.runtime.seccomp.profile import (
    OPS,
    RET_ALLOW,
    RET_DATA_MASK,
    RET_ERRNO,
    RET_KILL_PROCESS,
    RET_KILL_THREAD,
    RET_LOG,
    RET_TRACE,
    RET_TRAP,
    Condition,
    Gate,
    Profile,
    Rule,
    check_names,
    errno_action,
)

_SIMPLE_ACTIONS = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
}


def parse_profile(text: str) -> Profile:
    """The Profile in `text`; ProfileError naming the first thing wrong with it."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProfileError(
            f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from err
    if not isinstance(document, dict):
        raise ProfileError("not a JSON object")
    if "defaultAction" not in document:
        raise ProfileError("defaultAction is missing")
    default_errno = _integer(document.get("defaultErrnoRet", errno.EPERM), "defaultErrnoRet")
    default = _action(document["defaultAction"], default_errno, "defaultAction")
    syscalls = document.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ProfileError("syscalls must be a list")
    rules = tuple(_rule(entry, i) for i, entry in enumerate(syscalls))
    return Profile(default_action=default, rules=rules)


# The other way: one name per action value (docker's current names).
_ACTION_NAMES = {value: name for name, value in _SIMPLE_ACTIONS.items() if name != "SCMP_ACT_KILL"}


def action_words(value: int) -> dict[str, Any]:
    """docker's words for an action value: {"action": NAME[, "errnoRet": N]}; the inverse
    of reading a profile (an OCI runtime's seccomp section uses the same words)."""
    kind = value & ~RET_DATA_MASK
    if kind == RET_ERRNO:
        return {"action": "SCMP_ACT_ERRNO", "errnoRet": value & RET_DATA_MASK}
    if kind == RET_TRACE:
        return {"action": "SCMP_ACT_TRACE", "errnoRet": value & RET_DATA_MASK}
    return {"action": _ACTION_NAMES[value]}


def _action(name: Any, errno_ret: int | None, where: str) -> int:
    if not isinstance(name, str):
        raise ProfileError(f"{where}: the action must be a string")
    if name in _SIMPLE_ACTIONS:
        return _SIMPLE_ACTIONS[name]
    if name == "SCMP_ACT_ERRNO":
        return errno_action(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return RET_TRACE | ((errno_ret or 0) & RET_DATA_MASK)
    if name == "SCMP_ACT_NOTIFY":
        raise ProfileError(f"{where}: SCMP_ACT_NOTIFY is not supported (no seccomp agent)")
    raise ProfileError(f"{where}: unknown action {name!r}")


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{where} must be an integer, not {value!r}")
    return value


def _rule(entry: Any, position: int) -> Rule:
    where = f"syscalls[{position}]"
    if not isinstance(entry, dict):
        raise ProfileError(f"{where} must be an object")
    names = entry.get("names") or []
    if entry.get("name"):
        names = [*names, entry["name"]]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProfileError(f"{where}: names must be a list of strings")
    if not names:
        raise ProfileError(f"{where}: no syscall names")
    check_names(names)
    errno_ret = entry.get("errnoRet")
    if errno_ret is not None:
        errno_ret = _integer(errno_ret, f"{where}.errnoRet")
    action = _action(entry.get("action"), errno_ret, where)
    args = entry.get("args") or []
    if not isinstance(args, list):
        raise ProfileError(f"{where}: args must be a list")
    conditions = tuple(_condition(arg, f"{where}.args[{i}]") for i, arg in enumerate(args))
    return Rule(
        names=tuple(names),
        action=action,
        conditions=conditions,
        includes=_gate(entry.get("includes"), f"{where}.includes"),
        excludes=_gate(entry.get("excludes"), f"{where}.excludes"),
    )


def _condition(arg: Any, where: str) -> Condition:
    if not isinstance(arg, dict):
        raise ProfileError(f"{where} must be an object")
    index = _integer(arg.get("index", 0), f"{where}.index")
    if not 0 <= index <= 5:
        raise ProfileError(f"{where}.index {index} is outside 0-5")
    op = arg.get("op")
    if op not in OPS:
        raise ProfileError(f"{where}: unknown op {op!r}")
    value = _integer(arg.get("value", 0), f"{where}.value")
    value_two = _integer(arg.get("valueTwo", 0), f"{where}.valueTwo")
    for number, name in ((value, "value"), (value_two, "valueTwo")):
        if not 0 <= number < 1 << 64:
            raise ProfileError(f"{where}.{name} {number} is not a 64-bit unsigned value")
    return Condition(index=index, op=op, value=value, value_two=value_two)


def _gate(gate: Any, where: str) -> Gate:
    if gate is None:
        return Gate()
    if not isinstance(gate, dict):
        raise ProfileError(f"{where} must be an object")
    caps = gate.get("caps") or []
    arches = gate.get("arches") or []
    for items, name in ((caps, "caps"), (arches, "arches")):
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ProfileError(f"{where}.{name} must be a list of strings")
    min_kernel = None
    if gate.get("minKernel"):
        min_kernel = _kernel(gate["minKernel"], f"{where}.minKernel")
    return Gate(
        caps=frozenset(normalize(c) for c in caps),
        arches=frozenset(arches),
        min_kernel=min_kernel,
    )


def _kernel(value: Any, where: str) -> tuple[int, int]:
    parts = str(value).split(".")
    try:
        if len(parts) != 2:
            raise ValueError(value)
        return int(parts[0]), int(parts[1])
    except ValueError as err:
        raise ProfileError(f"{where} {value!r} is not MAJOR.MINOR") from err
