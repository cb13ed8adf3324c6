"""Variable substitution and word splitting as docker applies them (pure)."""

from __future__ import annotations

import pytest

from pyswarm.images.build.errors import BuildError
from pyswarm.images.build.words import expand, expand_words, split_words

ENV = {"NAME": "world", "EMPTY": "", "SPACED": "a b"}


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("$NAME", "world"),
        ("${NAME}x", "worldx"),
        ("pre-$NAME-post", "pre-world-post"),
        ("$MISSING", ""),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${NAME:-fallback}", "world"),
        ("${NAME:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${MISSING:+alt}", ""),
        ("${MISSING:-${NAME}}", "world"),
        ("'$NAME'", "$NAME"),
        ('"$NAME and more"', "world and more"),
        ("\\$NAME", "$NAME"),
        ('"\\$NAME"', "$NAME"),
        ("cost$", "cost$"),
        ('"a\\"b"', 'a"b'),
    ],
)
def test_expand(word: str, value: str) -> None:
    assert expand(word, ENV) == value


def test_backtick_escape() -> None:
    assert expand("`$NAME", ENV, "`") == "$NAME"
    assert expand("c:\\dir", ENV, "`") == "c:\\dir"


def test_split_words_keeps_quotes_until_expanded() -> None:
    assert split_words("a \"b c\" d\\ e 'f g'") == ["a", '"b c"', "d\\ e", "'f g'"]
    assert expand_words('src "my file" $NAME/', ENV) == ["src", "my file", "world/"]


@pytest.mark.parametrize("word", ['"open', "'open", "${", "${NAME", "${NAME?x}"])
def test_malformed(word: str) -> None:
    with pytest.raises(BuildError):
        expand(word, ENV)
