"""Durations, byte sizes and CPU counts as compose writes them. Each parser returns the value or
raises ValueError with a message for the user."""

from __future__ import annotations

import re
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# docker/go-units RAMInBytes: binary multiples, an optional "i" and "b".
_BYTES = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)
_MULTIPLIER = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_duration(value: Any) -> float:
    """`1m30s`, `1h5m30s20ms`, `1.5s` (Go's time.ParseDuration) -> seconds. A bare number is
    seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration {value} must not be negative")
        return float(value)
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
            raise ValueError(f"invalid duration {value!r} (expected e.g. 10s, 1m30s, 500ms)")
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    return round(total, 9)


def parse_bytes(value: Any) -> int:
    """`50M`, `1.5g`, `512k`, `1GiB` or a number of bytes -> bytes (binary multiples)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a byte size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"byte size {value} must not be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("a byte size must be a string like 50M or a number")
    match = _BYTES.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid byte size {value!r} (expected e.g. 50M, 1g, 512k)")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _MULTIPLIER[unit])


def parse_cpus(value: Any) -> float:
    """`0.5`, `"0.1"`, `2` -> a CPU count."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a CPU count")
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"invalid CPU count {value!r} (expected a number like 0.5)") from None
    if not cpus >= 0 or cpus == float("inf"):
        raise ValueError(f"CPU count {value!r} must be a non-negative number")
    return cpus


def parse_mode(value: Any) -> int:
    """A file mode: an int (YAML already read `0440` as octal) or an octal string `"0440"`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a file mode")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{1,4}", value.strip()):
        mode = int(value.strip().replace("o", ""), 8)
    else:
        raise ValueError(f"invalid file mode {value!r} (expected an octal number like 0440)")
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"file mode {value!r} is out of range")
    return mode
