"""Names in a stack's namespace, as `docker stack deploy` gives them: STACK_NAME for
what the stack owns, the name as written for what is external, `name:` when given;
and the label that marks everything the stack owns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE_LABEL = "com.docker.stack.namespace"


@dataclass
class Namer:
    stack: str

    def scoped(self, name: str) -> str:
        return f"{self.stack}_{name}"

    def object_name(self, key: str, item: dict[str, Any]) -> str:
        explicit = item.get("name")
        if explicit:
            return str(explicit)
        return key if item.get("external") else self.scoped(key)
