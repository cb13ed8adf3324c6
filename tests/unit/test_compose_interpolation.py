"""Compose variable interpolation and `.env` files, with compose's syntax and errors."""

from __future__ import annotations

import pytest

from pyswarm.stack.compose.interpolation import environment_lookup, interpolate, interpolate_text
from pyswarm.stack.compose.source import parse_dotenv
from pyswarm.stack.errors import ComposeError

ENV = {"SET": "value", "EMPTY": "", "TAG": "1.2"}
lookup = environment_lookup(ENV)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$SET", "value"),
        ("${SET}", "value"),
        ("a-${SET}-b", "a-value-b"),
        ("$UNSET", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${UNSET-fallback}", "fallback"),
        ("${SET:-fallback}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("busybox:${TAG}", "busybox:1.2"),
        ("${UNSET:-a:b}", "a:b"),
    ],
)
def test_forms(text: str, expected: str) -> None:
    assert interpolate_text(text, lookup, "x") == expected


def test_required_variables_fail_with_their_message_and_path() -> None:
    with pytest.raises(ComposeError) as err:
        interpolate({"services": {"web": {"image": "${IMAGE:?set IMAGE first}"}}}, lookup)
    assert "services.web.image" in str(err.value) and "set IMAGE first" in str(err.value)
    with pytest.raises(ComposeError, match="EMPTY"):
        interpolate_text("${EMPTY:?}", lookup, "x")
    assert interpolate_text("${EMPTY?}", lookup, "x") == ""
    with pytest.raises(ComposeError, match="UNSET"):
        interpolate_text("${UNSET?}", lookup, "x")


@pytest.mark.parametrize("text", ["${", "${SET", "$", "a $ b", "${1BAD}", "${SET!x}"])
def test_malformed_is_refused(text: str) -> None:
    with pytest.raises(ComposeError, match="invalid interpolation format"):
        interpolate_text(text, lookup, "services.web.image")


def test_only_values_are_interpolated_and_types_kept() -> None:
    data = {"$KEY": ["${SET}", 3, True, None, {"k": "$SET"}]}
    assert interpolate(data, lookup) == {"$KEY": ["value", 3, True, None, {"k": "value"}]}


def test_earlier_layers_win() -> None:
    both = environment_lookup({"A": "env"}, {"A": "dotenv", "B": "dotenv"})
    assert both("A") == "env" and both("B") == "dotenv" and both("C") is None


def test_dotenv_format() -> None:
    text = "\n".join([
        "# a comment", "", "PLAIN=one", "export EXPORTED=two", "QUOTED='a # b'",
        'DOUBLE="line\\nnext"', "COMMENTED=three # trailing", "EMPTY=", "BARE",
    ])  # fmt: skip
    assert parse_dotenv(text, ".env") == {
        "PLAIN": "one", "EXPORTED": "two", "QUOTED": "a # b", "DOUBLE": "line\nnext",
        "COMMENTED": "three", "EMPTY": "",
    }  # fmt: skip
    with pytest.raises(ComposeError, match=r"\.env:1"):
        parse_dotenv("BAD NAME=x", ".env")
