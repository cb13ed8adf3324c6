"""The stack package's exception tree; the CLI maps it once to a message and exit code."""

from __future__ import annotations

from pyswarm.common.errors import InvalidArgument


class ComposeError(InvalidArgument):
    """A compose file that cannot be deployed. `field` is the dotted path at fault
    (`services.web.deploy.replicas`), or the file for syntax errors."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message, field=field)


class ComposeErrors(ComposeError):
    """Several problems in one file set, found together so the user fixes them at once."""

    def __init__(self, errors: list[ComposeError]) -> None:
        self.errors = errors
        lines = [e.message for e in errors]
        super().__init__(lines[0] if len(lines) == 1 else "\n".join(lines))


def child_path(path: str, key: str | int) -> str:
    """The dotted path of `key` under `path`: `services.web`, `services.web.ports[0]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key
