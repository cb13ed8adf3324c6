"""From parsed instructions to build stages, checked before anything is built.

Everything that can be known from the Dockerfile alone is checked here (flags each
instruction accepts, argument shapes, stage names, `--platform`, durations, URLs in
ADD), so a bad Dockerfile fails with its line before a single image is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyswarm.common.durations import InvalidDuration, parse_duration_ns
from pyswarm.images.build.dockerfile import Dockerfile, Instruction, json_form
from pyswarm.images.build.errors import BuildError
from pyswarm.images.build.words import expand, split_words
from pyswarm.images.oci import host_platform
from pyswarm.proto import types_pb2

FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "COPY": frozenset({"from", "chown"}),
    "ADD": frozenset({"chown"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "retries"}),
}
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_NEEDS_ONE_ARG = ("WORKDIR", "USER", "STOPSIGNAL")
_NEEDS_ARGS = ("RUN", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "MAINTAINER", "SHELL")


@dataclass
class Stage:
    index: int
    name: str  # the `AS` name, lower case; "" when unnamed
    base: str  # the FROM image (or "scratch", or an earlier stage), global ARGs expanded
    from_line: Instruction
    steps: list[Instruction] = field(default_factory=list)


@dataclass
class Plan:
    dockerfile: Dockerfile
    global_args: list[Instruction]
    stages: list[Stage]

    @property
    def total_steps(self) -> int:
        return len(self.dockerfile.instructions)

    def stage_named(self, ref: str, before: int) -> Stage | None:
        """The stage `ref` (its name or index) names among the first `before` stages."""
        for stage in self.stages[:before]:
            if ref.lower() == stage.name or ref == str(stage.index):
                return stage
        return None


def plan(dockerfile: Dockerfile, build_args: Mapping[str, str]) -> Plan:
    """Check every instruction and group them into stages."""
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    scope: dict[str, str] = {}
    for instruction in dockerfile.instructions:
        where = dockerfile.where(instruction)
        check_instruction(instruction, dockerfile.escape, where)
        if instruction.keyword == "FROM":
            stages.append(_stage(instruction, len(stages), stages, scope, dockerfile, where))
        elif not stages:
            if instruction.keyword != "ARG":
                raise BuildError(
                    f"{instruction.keyword} before the first FROM: no build stage in current"
                    " context",
                    where=where,
                )
            global_args.append(instruction)
            name, default = arg_declaration(instruction, dockerfile.escape, scope, where)
            value = build_args.get(name, default)
            if value is not None:
                scope[name] = value
        else:
            if instruction.keyword == "COPY" and "from" in instruction.flags:
                source = instruction.flags["from"]
                if not source:
                    raise BuildError("COPY --from needs a stage name or image", where=where)
                if source.lower() == stages[-1].name or source == str(stages[-1].index):
                    raise BuildError(
                        f"COPY --from={source}: a stage cannot copy from itself", where=where
                    )
            stages[-1].steps.append(instruction)
    if not stages:
        raise BuildError("no FROM instruction: no build stage in context", where=dockerfile.name)
    return Plan(dockerfile, global_args, stages)


def _stage(
    instruction: Instruction,
    index: int,
    earlier: list[Stage],
    scope: Mapping[str, str],
    dockerfile: Dockerfile,
    where: str,
) -> Stage:
    words = split_words(instruction.args, dockerfile.escape)
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise BuildError(
            "FROM requires either one or three arguments (IMAGE [AS NAME])", where=where
        )
    base = expand(words[0], scope, dockerfile.escape)
    if not base:
        raise BuildError("FROM: the base image name is empty", where=where)
    name = words[2].lower() if len(words) == 3 else ""
    if name and not _STAGE_NAME.match(name):
        raise BuildError(f"invalid name for build stage: {words[2]!r}", where=where)
    if name and any(stage.name == name for stage in earlier):
        raise BuildError(f"duplicate name for build stage: {name!r}", where=where)
    platform = instruction.flags.get("platform")
    if platform is not None:
        check_platform(expand(platform, scope, dockerfile.escape), where)
    return Stage(index, name, base, instruction)


def check_platform(platform: str, where: str) -> None:
    arch, os_name = host_platform()
    parts = platform.lower().split("/")
    if parts[0] != os_name or (len(parts) > 1 and parts[1] != arch):
        raise BuildError(
            f"FROM --platform={platform}: this host builds for {os_name}/{arch} only", where=where
        )


def check_instruction(instruction: Instruction, escape: str, where: str) -> None:
    """Flags and argument shapes; values that need variables are checked when built."""
    keyword = instruction.keyword
    allowed = FLAGS.get(keyword, frozenset())
    for flag in instruction.flags:
        if flag not in allowed:
            raise BuildError(f"{keyword}: unknown flag: --{flag}", where=where)
    words = split_words(instruction.args, escape)
    if keyword in _NEEDS_ARGS and not words:
        raise BuildError(f"{keyword} requires at least one argument", where=where)
    if keyword in _NEEDS_ONE_ARG and len(words) != 1:
        raise BuildError(f"{keyword} requires exactly one argument", where=where)
    if keyword == "SHELL" and instruction.json_args is None:
        raise BuildError(
            'SHELL requires the arguments to be in JSON form (["sh", "-c"])', where=where
        )
    if keyword in ("COPY", "ADD"):
        paths = instruction.json_args if instruction.json_args is not None else words
        if len(paths) < 2:
            raise BuildError(
                f"{keyword} requires at least two arguments (SRC... DEST)", where=where
            )
        if keyword == "ADD":
            for source in paths[:-1]:
                check_not_url(source, where)
    if keyword in ("ENV", "LABEL"):
        if not words:
            raise BuildError(f"{keyword} requires at least one argument", where=where)
        key_values(instruction, escape, {}, where)
    if keyword == "ARG" and len(words) != 1:
        raise BuildError("ARG requires exactly one argument (NAME[=DEFAULT])", where=where)
    if keyword == "HEALTHCHECK":
        healthcheck(instruction, escape, where)


def check_not_url(source: str, where: str) -> None:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        raise BuildError(
            f"ADD {source}: downloading from a URL is not supported (nodes do not reach"
            " outside hosts); fetch it into the context and COPY it",
            where=where,
        )


def arg_declaration(
    instruction: Instruction, escape: str, env: Mapping[str, str], where: str
) -> tuple[str, str | None]:
    """(name, default or None) of `ARG NAME[=DEFAULT]`."""
    word = split_words(instruction.args, escape)[0]
    name, sep, default = word.partition("=")
    if not name:
        raise BuildError("ARG names cannot be empty", where=where)
    return name, expand(default, env, escape) if sep else None


def key_values(
    instruction: Instruction, escape: str, env: Mapping[str, str], where: str
) -> list[tuple[str, str]]:
    """The pairs of ENV/LABEL: `KEY=VALUE ...`, or the old `KEY VALUE` (one pair)."""
    words = split_words(instruction.args, escape)
    if words and "=" not in words[0]:
        if instruction.keyword != "ENV" or len(words) < 2:
            raise BuildError(f"{instruction.keyword} names must be given as KEY=VALUE", where=where)
        value = instruction.args[len(words[0]) :].strip()
        return [(words[0], expand(value, env, escape))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise BuildError(
                f"{instruction.keyword}: {word!r} is not KEY=VALUE (mixed forms)", where=where
            )
        key = expand(key, env, escape)
        if not key:
            raise BuildError(f"{instruction.keyword} names cannot be empty", where=where)
        pairs.append((key, expand(value, env, escape)))
    return pairs


def duration_ns(text: str, flag: str, where: str) -> int:
    """Go's duration syntax (`30s`, `1m30s`, `500ms`) in nanoseconds."""
    try:
        return parse_duration_ns(text, f"HEALTHCHECK --{flag}")
    except InvalidDuration as err:
        raise BuildError(err.message, where=where) from None


def healthcheck(instruction: Instruction, escape: str, where: str) -> types_pb2.HealthConfig:
    head, _, rest = instruction.args.partition(" ")
    kind = head.upper()
    if kind == "NONE":
        if instruction.flags or rest.strip():
            raise BuildError("HEALTHCHECK NONE takes no flags or arguments", where=where)
        return types_pb2.HealthConfig(test=["NONE"])
    if kind != "CMD":
        raise BuildError(f"HEALTHCHECK: unknown type {head!r} (CMD or NONE)", where=where)
    command = rest.strip()
    if not command:
        raise BuildError("HEALTHCHECK CMD requires a command", where=where)
    exec_form = json_form(command)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
    values = {name: 0 for name in ("interval", "timeout", "start-period")}
    for name in values:
        if name in instruction.flags:
            values[name] = duration_ns(instruction.flags[name], name, where)
            if values[name] and values[name] < 10**6:
                raise BuildError(f"HEALTHCHECK --{name} cannot be less than 1ms", where=where)
    retries = 0
    if "retries" in instruction.flags:
        text = instruction.flags["retries"]
        if not text.isdigit() or int(text) < 1:
            raise BuildError(f"HEALTHCHECK --retries must be at least 1, not {text!r}", where=where)
        retries = int(text)
    return types_pb2.HealthConfig(
        test=test,
        interval_ns=values["interval"],
        timeout_ns=values["timeout"],
        start_period_ns=values["start-period"],
        retries=retries,
    )


def expose_ports(words: list[str], where: str) -> list[str]:
    """EXPOSE values as docker stores them: `80/tcp`, `53/udp`; ranges are expanded."""
    ports = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        if (
            proto not in ("tcp", "udp", "sctp")
            or not low.isdigit()
            or (high and not high.isdigit())
        ):
            raise BuildError(f"EXPOSE: invalid port {word!r}", where=where)
        first, last = int(low), int(high or low)
        if not 0 < first <= last <= 65535:
            raise BuildError(f"EXPOSE: invalid port {word!r}", where=where)
        ports += [f"{number}/{proto}" for number in range(first, last + 1)]
    return ports
