"""Parse a Dockerfile into instructions, as docker's parser reads it (pure, no I/O).

- Parser directives (`# escape=` and `# syntax=`, the latter ignored) only at the top,
  before any comment, blank line or instruction.
- Lines whose first non-blank character is `#` are comments, also inside a
  continuation; a line ending in the escape character continues on the next.
- An instruction is a keyword (any case) and its arguments; leading `--name=value`
  flags are split off; arguments that parse as a JSON array of strings are the exec
  (JSON) form, anything else the shell form.
Errors name the file and line: `Dockerfile:7: unknown instruction: RUNN`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pyswarm.images.build.errors import BuildError

KEYWORDS = frozenset(
    {
        "FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER",
        "EXPOSE", "LABEL", "HEALTHCHECK", "STOPSIGNAL", "SHELL", "VOLUME", "MAINTAINER",
    }
)  # fmt: skip
_UNSUPPORTED = frozenset({"ONBUILD"})  # docker knows it; refusing beats ignoring it
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"^--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?(?:\s+|$)")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    line: int  # where it starts, 1-based
    args: str  # the arguments after the flags, as written (continuations joined)
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None  # the exec form, when `args` is a JSON array

    def text(self) -> str:
        """The instruction as docker prints it in `Step n/m : ...`."""
        flags = " ".join(f"--{name}={value}" for name, value in self.flags.items())
        return " ".join(part for part in (self.keyword, flags, self.args) if part)


@dataclass(frozen=True)
class Dockerfile:
    name: str  # as the user named it, for error messages
    escape: str
    instructions: list[Instruction]

    def where(self, instruction: Instruction) -> str:
        return f"{self.name}:{instruction.line}"


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """The instructions of Dockerfile `text`; `name` prefixes every error."""
    lines = text.splitlines()
    escape, first = _directives(lines, name)
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number in range(first, len(lines) + 1):
        raw = lines[number - 1]
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            pending.append(body[: -len(escape)])
            continue
        pending.append(body)
        instructions.append(_instruction(" ".join(p.strip() for p in pending), start, name))
        pending = []
    if pending:
        instructions.append(_instruction(" ".join(p.strip() for p in pending), start, name))
    if not instructions:
        raise BuildError("the Dockerfile is empty (no instructions)", where=name)
    return Dockerfile(name, escape, instructions)


def _directives(lines: list[str], name: str) -> tuple[str, int]:
    """(escape character, first line number after the directives)."""
    escape = "\\"
    seen: set[str] = set()
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if match is None:
            return escape, index + 1
        key, value = match.group(1).lower(), match.group(2)
        if key not in ("escape", "syntax"):
            return escape, index + 1  # an ordinary comment ends the directives
        if key in seen:
            raise BuildError(f"only one {key} parser directive can be used", where=name)
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise BuildError(
                    f"invalid escape token '{value}' does not match ` or \\",
                    where=f"{name}:{index + 1}",
                )
            escape = value
    return escape, len(lines) + 1


def _instruction(text: str, line: int, name: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    upper = keyword.upper()
    if upper not in KEYWORDS:
        if upper in _UNSUPPORTED:
            raise BuildError(f"{upper} is not supported by this builder", where=f"{name}:{line}")
        raise BuildError(f"unknown instruction: {keyword}", where=f"{name}:{line}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while match := _FLAG.match(rest):
        flag = match.group(1).lower()
        if flag in flags:
            raise BuildError(f"{upper}: duplicate flag --{flag}", where=f"{name}:{line}")
        flags[flag] = match.group(2) if match.group(2) is not None else "true"
        rest = rest[match.end() :]
    return Instruction(upper, line, rest.strip(), flags, json_form(rest))


def json_form(args: str) -> list[str] | None:
    stripped = args.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None
