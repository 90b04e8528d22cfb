"""Durations, byte sizes and CPU counts as compose writes them. Each parser returns the value or
raises ValueError with a message for the user. Every result is finite and within the range the
engine accepts (the bounds are in orchestrator/model.py): NaN, infinities and values that overflow
the engine's int64 are refused here, never at container creation."""

from __future__ import annotations

import math
import re
from typing import Any

from orchestrator.model.ranges import INT64_MAX, MAX_CPUS, MAX_DURATION, MIN_CPUS
from orchestrator.stackfile.problems import quote

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# docker/go-units RAMInBytes: binary multiples, an optional "i" and "b".
_BYTES = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?([kmgtp])?i?b?", re.IGNORECASE)
_MULTIPLIER = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_duration(value: Any) -> float:
    """`1m30s`, `1h5m30s20ms`, `1.5s` (Go's time.ParseDuration) -> seconds. A bare number is
    seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a duration")
    if isinstance(value, (int, float)):
        return _bounded_duration(_as_float(value), value)
    if not isinstance(value, str):
        raise ValueError("a duration must be a string like 1m30s")
    text = value.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("empty duration")
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {quote(value)} (expected e.g. 10s, 1m30s, 500ms)")
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    return _bounded_duration(round(total, 9), value)


def _as_float(number: int | float) -> float:
    try:
        return float(number)
    except OverflowError:  # an int beyond any float
        return math.inf if number > 0 else -math.inf


def _bounded_duration(seconds: float, given: Any) -> float:
    if math.isnan(seconds):
        raise ValueError(f"duration {quote(given)} is not a number")
    if seconds < 0:
        raise ValueError(f"duration {quote(given)} must not be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"duration {quote(given)} is over the maximum of one year ({MAX_DURATION:.0f}s)")
    return float(seconds)


def parse_bytes(value: Any) -> int:
    """`50M`, `1.5g`, `512k`, `1GiB` or a number of bytes -> bytes (binary multiples)."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a byte size")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # `1e9` in YAML is a float
    if isinstance(value, int):
        return _bounded_bytes(value, value)
    if not isinstance(value, str):
        raise ValueError("a byte size must be a string like 50M or a whole number of bytes")
    match = _BYTES.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid byte size {quote(value)} (expected e.g. 50M, 1g, 512k)")
    unit = match.group(2).lower() if match.group(2) else None
    number = float(match.group(1))
    if not math.isfinite(number) or number * _MULTIPLIER[unit] > INT64_MAX:
        raise ValueError(f"byte size {quote(value)} is over the maximum of {INT64_MAX} bytes")
    return _bounded_bytes(int(number * _MULTIPLIER[unit]), value)


def _bounded_bytes(size: int, given: Any) -> int:
    if size < 0:
        raise ValueError(f"byte size {quote(given)} must not be negative")
    if size > INT64_MAX:
        raise ValueError(f"byte size {quote(given)} is over the maximum of {INT64_MAX} bytes")
    return size


def parse_cpus(value: Any) -> float:
    """`0.5`, `"0.1"`, `2` -> a CPU count: 0 (no limit) or MIN_CPUS..MAX_CPUS."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a CPU count")
    try:
        cpus = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"invalid CPU count {quote(value)} (expected a number like 0.5)") from None
    if cpus != 0 and not MIN_CPUS <= cpus <= MAX_CPUS:  # NaN fails the comparison too
        raise ValueError(f"CPU count {quote(value)} must be 0 (no limit) or from {MIN_CPUS} to {MAX_CPUS:.0f}")
    return cpus


def parse_mode(value: Any) -> int:
    """A file mode: an int (YAML already read `0440` as octal) or an octal string `"0440"`."""
    if isinstance(value, bool):
        raise ValueError(f"{quote(value)} is not a file mode")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{1,4}", value.strip()):
        mode = int(value.strip().replace("o", ""), 8)
    else:
        raise ValueError(f"invalid file mode {quote(value)} (expected an octal number like 0440)")
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"file mode {quote(value)} is out of range")
    return mode
