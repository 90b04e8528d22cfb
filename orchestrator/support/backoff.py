"""The one retry delay: doubling from a first delay up to a cap.

Used wherever the daemon retries something that failed (a restart without a policy delay, a
removal the engine refused, an ingress port that could not be bound, a lost Redis connection in
the publisher and in the CLI's event follower). The exponent is bounded, so no count of failures
can overflow the float.
"""

from __future__ import annotations

#: 2**64 times any first delay is beyond every cap in use.
_MAX_DOUBLINGS = 64


def doubling(attempt: int, first: float, cap: float) -> float:
    """The delay before retry `attempt` (0: the first retry waits `first`), at most `cap`."""
    return min(cap, first * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS))


__all__ = ["doubling"]
