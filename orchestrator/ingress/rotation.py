"""The order in which a published port tries its upstreams, shared by TCP and UDP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

U = TypeVar("U")


def in_turn(upstreams: Sequence[U], start: int, failed_until: Mapping[U, float], now: float) -> list[U]:
    """Round robin from `start` (taken modulo the count), the upstreams still cooling down after a
    failure last: the next new connection or flow tries them in this order."""
    if not upstreams:
        return []
    start %= len(upstreams)
    rotation = [*upstreams[start:], *upstreams[:start]]
    return sorted(rotation, key=lambda u: failed_until.get(u, 0.0) > now)  # stable: keeps the turn
