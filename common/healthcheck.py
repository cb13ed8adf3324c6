"""A HEALTHCHECK as docker writes it in an image config and in `inspect`: one JSON shape
({"Test": [...], "Interval": ns, "Timeout": ns, "StartPeriod": ns, "Retries": n}, zero
fields left out) for the builder that records it, the agent that runs it and the CLI
that shows it."""

from __future__ import annotations

from typing import Any

from pyswarm.proto import types_pb2

_FIELDS = (
    ("Interval", "interval_ns"),
    ("Timeout", "timeout_ns"),
    ("StartPeriod", "start_period_ns"),
    ("Retries", "retries"),
)


def healthcheck_document(check: types_pb2.HealthConfig) -> dict[str, Any]:
    document: dict[str, Any] = {"Test": list(check.test)}
    for key, attribute in _FIELDS:
        value = getattr(check, attribute)
        if value:
            document[key] = value
    return document


def healthcheck_from_document(document: object) -> types_pb2.HealthConfig | None:
    """The check an image config's "Healthcheck" holds; None when it holds none."""
    if not isinstance(document, dict) or not document.get("Test"):
        return None
    check = types_pb2.HealthConfig(test=[str(word) for word in document["Test"]])
    for key, attribute in _FIELDS:
        setattr(check, attribute, int(document.get(key) or 0))
    return check
