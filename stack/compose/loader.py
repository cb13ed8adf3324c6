"""From `-c` files to one checked, canonical project: each file is read, interpolated
(environment first, then the `.env` beside the first file), cast, validated and
normalised on its own; then the files merge in order and the whole is checked for
references. Nothing outside this module needs to know compose's spellings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyswarm.stack.compose import normalize
from pyswarm.stack.compose.interpolation import Lookup, environment_lookup, interpolate
from pyswarm.stack.compose.merge import merge_documents
from pyswarm.stack.compose.references import check_references
from pyswarm.stack.compose.source import parse_yaml, read_compose_file, read_dotenv
from pyswarm.stack.compose.validation import ignored_keys, validate
from pyswarm.stack.errors import ComposeError, ComposeErrors


@dataclass
class ComposeProject:
    """The merged document in canonical form, what the stack ignores, and how
    variables resolve (secrets and configs from `environment:` read them)."""

    document: dict[str, Any]
    ignored: list[str] = field(default_factory=list)
    lookup: Lookup = field(default=lambda name: None)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.document["services"]  # type: ignore[no-any-return]

    def warning(self) -> str:
        """docker's one line for the keys it does not deploy ("" when there are none)."""
        return "Ignoring unsupported options: " + ", ".join(self.ignored) if self.ignored else ""


@dataclass
class ComposeSource:
    """One `-c` argument: its text and where relative paths in it start from."""

    name: str
    text: str | None  # None: read `name` from disk
    base: Path


def sources_from_paths(paths: list[str], stdin_text: str | None = None) -> list[ComposeSource]:
    out = []
    for path in paths:
        if path == "-":
            out.append(ComposeSource("-", stdin_text or "", Path.cwd()))
        else:
            out.append(ComposeSource(path, None, Path(path).resolve().parent))
    return out


def load_project(
    sources: list[ComposeSource], environ: Mapping[str, str] | None = None
) -> ComposeProject:
    if not sources:
        raise ComposeError("at least one compose file is needed", field="--compose-file")
    env = dict(os.environ if environ is None else environ)
    dotenv = read_dotenv(sources[0].base)
    lookup = environment_lookup(env, dotenv)
    documents: list[dict[str, Any]] = []
    ignored: list[str] = []
    errors: list[ComposeError] = []
    for source in sources:
        try:
            raw = (
                read_compose_file(Path(source.name))
                if source.text is None
                else parse_yaml(source.text, source.name)
            )
            checked = validate(interpolate(raw, lookup), source.name)
            ignored.extend(p for p in ignored_keys(checked) if p not in ignored)
            documents.append(normalize.document(checked, source.base))
        except ComposeErrors as err:
            errors.extend(err.errors)
        except ComposeError as err:
            errors.append(ComposeError(f"{source.name}: {err.message}"))
    if errors:
        raise ComposeErrors(errors)
    merged = merge_documents(documents)
    problems = check_references(merged)
    if problems:
        raise ComposeErrors(problems)
    return ComposeProject(merged, ignored, lookup)
