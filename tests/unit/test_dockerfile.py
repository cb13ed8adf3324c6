"""The Dockerfile parser and the plan checks (pure: no agent, no root)."""

from __future__ import annotations

import pytest

from pyswarm.images.build.dockerfile import parse
from pyswarm.images.build.errors import BuildError
from pyswarm.images.build.plan import (
    duration_ns,
    expose_ports,
    healthcheck,
    key_values,
    plan,
)
from pyswarm.images.oci import host_platform


def test_continuations_comments_and_lines() -> None:
    text = (
        "# leading comment\n"
        "FROM busybox\n"
        "\n"
        "RUN echo a \\\n"
        "  # a comment inside the continuation\n"
        "    && echo b\n"
        "run echo lower\n"
    )
    parsed = parse(text)
    assert [(i.keyword, i.line) for i in parsed.instructions] == [
        ("FROM", 2),
        ("RUN", 4),
        ("RUN", 7),
    ]
    assert parsed.instructions[1].args == "echo a && echo b"


def test_escape_directive_changes_the_continuation_character() -> None:
    parsed = parse("# escape=`\nFROM busybox\nRUN dir c:\\ `\n  && echo x\n")
    assert parsed.escape == "`"
    assert parsed.instructions[1].args == "dir c:\\ && echo x"


def test_directive_after_a_comment_is_a_comment() -> None:
    assert parse("# hello\n# escape=`\nFROM busybox\n").escape == "\\"


def test_exec_and_shell_forms_and_flags() -> None:
    parsed = parse(
        'FROM --platform=linux busybox AS base\nCMD ["echo", "hi"]\nCMD echo hi\n'
        "COPY --from=base --chown=1:2 /a /b\nCMD [not json\n"
    )
    from_line, exec_cmd, shell_cmd, copy, broken = parsed.instructions
    assert from_line.flags == {"platform": "linux"} and from_line.args == "busybox AS base"
    assert exec_cmd.json_args == ["echo", "hi"]
    assert shell_cmd.json_args is None
    assert copy.flags == {"from": "base", "chown": "1:2"} and copy.args == "/a /b"
    assert broken.json_args is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM busybox\nRUN true\n\nRUNN x\n", "Dockerfile:4: unknown instruction: RUNN"),
        ("", "Dockerfile: the Dockerfile is empty"),
        ("# escape=x\nFROM busybox\n", "Dockerfile:1: invalid escape token"),
        ("FROM busybox\nCOPY --bogus=1 a b\n", "Dockerfile:2: COPY: unknown flag: --bogus"),
        ("RUN echo\n", "Dockerfile:1: RUN before the first FROM"),
        ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least two arguments"),
        ("FROM busybox\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
        ("FROM busybox\nSHELL sh -c\n", "Dockerfile:2: SHELL requires the arguments to be in JSON"),
        ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS x\nFROM b AS X\n", "Dockerfile:2: duplicate name for build stage"),
        ("FROM busybox\nADD https://example.invalid/x /x\n", "Dockerfile:2: ADD https://"),
        ("FROM busybox\nHEALTHCHECK --interval=5 CMD true\n", 'invalid duration "5"'),
        ("FROM busybox\nHEALTHCHECK --retries=0 CMD true\n", "--retries must be at least 1"),
        ("FROM busybox\nHEALTHCHECK NONE true\n", "HEALTHCHECK NONE takes no"),
        ("FROM busybox AS one\nCOPY --from=one a b\n", "a stage cannot copy from itself"),
        ("FROM --platform=windows/arm busybox\n", "this host builds for"),
        ("FROM busybox\nLABEL novalue\n", "LABEL names must be given as KEY=VALUE"),
        ("FROM busybox\nONBUILD RUN true\n", "Dockerfile:2: ONBUILD is not supported"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(BuildError) as caught:
        plan(parse(text), {})
    assert message in caught.value.message


def test_stages_global_args_and_steps() -> None:
    text = (
        "ARG VERSION=1.0\nARG BASE\nFROM busybox:${VERSION} AS build\nRUN true\n"
        "FROM build\nCOPY --from=0 /x /y\nFROM ${BASE:-scratch}\n"
    )
    checked = plan(parse(text), {"VERSION": "2"})
    assert [s.base for s in checked.stages] == ["busybox:2", "build", "scratch"]
    assert checked.stages[0].name == "build"
    assert [i.keyword for i in checked.global_args] == ["ARG", "ARG"]
    assert checked.total_steps == 7
    assert checked.stage_named("BUILD", 1) is checked.stages[0]
    assert checked.stage_named("0", 1) is checked.stages[0]
    assert checked.stage_named("build", 0) is None


def test_platform_of_the_host_is_accepted() -> None:
    arch, os_name = host_platform()
    checked = plan(parse(f"FROM --platform={os_name}/{arch} busybox\n"), {})
    assert checked.stages[0].base == "busybox"


def test_env_and_label_forms() -> None:
    env = {"abc": "hello"}
    new_form = parse('FROM x\nENV A=1 B="two words" C=$abc D=${abc:+set}\n').instructions[1]
    assert key_values(new_form, "\\", env, "here") == [
        ("A", "1"),
        ("B", "two words"),
        ("C", "hello"),
        ("D", "set"),
    ]
    old_form = parse("FROM x\nENV GREETING hello   big world\n").instructions[1]
    assert key_values(old_form, "\\", {}, "here") == [("GREETING", "hello   big world")]
    label = parse('FROM x\nLABEL "com.example.vendor"="ACME Inc" version=1.0\n').instructions[1]
    assert key_values(label, "\\", {}, "here") == [
        ("com.example.vendor", "ACME Inc"),
        ("version", "1.0"),
    ]


def test_healthcheck_durations_and_forms() -> None:
    assert duration_ns("1m30s", "interval", "x") == 90 * 10**9
    assert duration_ns("500ms", "interval", "x") == 5 * 10**8
    shell = parse("FROM x\nHEALTHCHECK --interval=5s --retries=2 CMD curl -f http://l/\n")
    check = healthcheck(shell.instructions[1], "\\", "x")
    assert check.test == ["CMD-SHELL", "curl -f http://l/"]
    assert check.interval_ns == 5 * 10**9 and check.retries == 2 and check.timeout_ns == 0
    exec_form = parse('FROM x\nHEALTHCHECK CMD ["true", "1"]\n')
    assert healthcheck(exec_form.instructions[1], "\\", "x").test == ["CMD", "true", "1"]
    assert healthcheck(parse("FROM x\nHEALTHCHECK NONE\n").instructions[1], "\\", "x").test == [
        "NONE"
    ]


def test_expose_ports() -> None:
    assert expose_ports(["80", "53/UDP", "8000-8002"], "x") == [
        "80/tcp",
        "53/udp",
        "8000/tcp",
        "8001/tcp",
        "8002/tcp",
    ]
    with pytest.raises(BuildError, match="invalid port"):
        expose_ports(["70000"], "x")
