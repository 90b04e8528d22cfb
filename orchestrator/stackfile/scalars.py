"""Plain YAML scalars as go-yaml v3 reads them (the YAML 1.2 core schema, plus go-yaml's `0755`
octal): `no`/`on` stay strings, `22:22` is a string, `0440` is 288. An integer that overflows
int64 becomes a float, as in go-yaml, so that every later range check sees a number (Python
would otherwise carry a 5,000-digit int, and refuse to print it)."""

from __future__ import annotations

import math
import re
from typing import Any

from orchestrator.model.ranges import INT64_MAX

_INT_RE = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_OCTAL_RE = re.compile(r"[-+]?0o?[0-7_]+")
_HEX_RE = re.compile(r"[-+]?0x[0-9a-fA-F_]+")
_BIN_RE = re.compile(r"[-+]?0b[01_]+")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def resolve_plain(text: str) -> Any:
    """An untagged plain scalar as go-yaml v3 reads it (YAML 1.2 core schema + `0755` octal)."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    first = text[0]
    if not (first.isdigit() or first in "+-."):
        return text
    clean = text.replace("_", "")
    if _INT_RE.fullmatch(text):
        return _int_or_float(clean, 10)
    for pattern, base in ((_OCTAL_RE, 8), (_HEX_RE, 16), (_BIN_RE, 2)):
        if pattern.fullmatch(text):
            digits = clean.lstrip("+-")
            digits = digits[2:] if digits[1:2] in ("o", "x", "b") else digits
            number = _int_or_float(digits, base) if digits else 0
            return -number if clean.startswith("-") else number
    if text.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text.lower()]
    if _FLOAT_RE.fullmatch(text):
        return float(clean)
    return text


def _int_or_float(digits: str, base: int) -> int | float:
    """An integer that overflows int64 is a float, as go-yaml reads it (and Python would refuse
    to convert a decimal of over 4,300 digits at all): every range check then sees a number."""
    if len(digits) > _LONGEST_INT[base]:
        return float(digits) if base == 10 else math.inf
    number = int(digits, base)
    return number if abs(number) <= INT64_MAX else float(number)


#: Digits of the largest int64 in each base, plus a sign and leading zeros a file might carry.
_LONGEST_INT = {base: len(format(INT64_MAX, spec)) + 8 for base, spec in ((10, "d"), (8, "o"), (16, "x"), (2, "b"))}
