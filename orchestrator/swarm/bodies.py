"""How request bodies for the engine's Swarm API are written: durations in nanoseconds, and an
unset field left out rather than sent empty."""

from __future__ import annotations

from typing import Any


def drop_empty(mapping: dict[str, Any]) -> dict[str, Any]:
    """The entries with a value: None and empty collections mean "not set" (0 and False are values)."""
    return {key: value for key, value in mapping.items() if value is not None and value != {} and value != []}


def nanoseconds(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1e9)
