"""Docker's word rules for Dockerfile arguments: quotes, escapes and `$VAR` substitution.

Pure functions. `split_words` cuts a line into words at unquoted whitespace and keeps
quotes and escapes as written; `expand` then turns one such word into its value:
quotes removed, escapes applied and `$NAME`, `${NAME}`, `${NAME:-word}`,
`${NAME:+word}`, `${NAME-word}` and `${NAME+word}` replaced from `env` (single quotes
keep everything literal, as in a shell). An unknown variable is the empty string.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyswarm.images.build.errors import BuildError


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Words of `text` split at whitespace outside quotes; quotes and escapes are kept."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == escape and quote == '"' and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            in_word = True
            current.append(ch)
            if ch == escape and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch in "'\"":
                quote = ch
        i += 1
    if in_word:
        words.append("".join(current))
    return words


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """The value of one word: quotes removed, escapes applied, variables substituted."""
    return _Expander(word, env, escape).run()


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    return [expand(word, env, escape) for word in split_words(text, escape)]


class _Expander:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def run(self, stop: str = "") -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch == stop:
                break
            self.pos += 1
            if ch == self.escape:
                out.append(self.take())
            elif ch == "'":
                out.append(self._until("'"))
            elif ch == '"':
                out.append(self._double_quoted())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)
        return "".join(out)

    def _until(self, end: str) -> str:
        close = self.text.find(end, self.pos)
        if close < 0:
            raise BuildError(f"unterminated quote in {self.text!r}")
        value = self.text[self.pos : close]
        self.pos = close + 1
        return value

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.take()
            if ch == "":
                raise BuildError(f"unterminated quote in {self.text!r}")
            if ch == '"':
                return "".join(out)
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                out.append(self.take())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def _dollar(self) -> str:
        if self.peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        name = self._name()
        if not name:
            raise BuildError(f"bad substitution in {self.text!r}")
        ch = self.take()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.take()
        if ch not in ("-", "+"):
            raise BuildError(f"unsupported modifier ({ch!r}) in substitution {self.text!r}")
        word = self.run(stop="}")
        if self.take() != "}":
            raise BuildError(f"missing '}}' in substitution {self.text!r}")
        is_set = name in self.env and (not colon or self.env[name] != "")
        if ch == "-":
            return self.env[name] if is_set else word
        return word if is_set else ""
