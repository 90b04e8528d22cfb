"""How big a stack may be, and what a load does with dangerous options: one small frozen value
passed into the loader, so that loading stays pure and the daemon and `orchestrator config`
apply the same rules.

The defaults are the settings' defaults (orchestrator/settings.py, docs/settings.md); a user
should never meet them with a real stack. Every problem over a limit names the setting that
raises it, e.g. "... is over the limit of 10000 replicas per service (ORCHESTRATOR_MAX_REPLICAS)".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from orchestrator.settings import Settings, env_name

DangerPolicy = Literal["warn", "deny"]

_DEFAULT: dict[str, Any] = {f.name: f.default for f in fields(Settings)}


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings of the same names (docs/settings.md says what each bounds)."""

    max_services: int = _DEFAULT["max_services"]
    max_replicas: int = _DEFAULT["max_replicas"]
    #: Checked while the parser runs, before any recursion.
    max_yaml_depth: int = _DEFAULT["max_yaml_depth"]
    #: Each alias counted at the full size of what it repeats (an alias bomb's cap).
    max_yaml_nodes: int = _DEFAULT["max_yaml_nodes"]
    #: Bytes of one file a stack names (env_file, .env, a secret's or config's `file:`).
    max_file_size: int = _DEFAULT["max_file_size"]
    #: Dangerous options (stackfile/dangerous.py): listed as warnings, or refused.
    dangerous_options: DangerPolicy = _DEFAULT["dangerous_options"]

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


def limit_note(limit: int, what: str, setting: str) -> str:
    """"the limit of 64 levels of YAML nesting (ORCHESTRATOR_MAX_YAML_DEPTH)": the limit and the
    variable that raises it."""
    return f"the limit of {limit} {what} ({env_name(setting)})"


def over_limit(value: object, limit: int, what: str, setting: str) -> str:
    """The message for a value over a limit, e.g. "1000000000 is over the limit of 10000
    replicas per service (ORCHESTRATOR_MAX_REPLICAS)"."""
    return f"{value} is over {limit_note(limit, what, setting)}"


#: Files that `include:` and `extends: {file: ...}` may read in one load (each counted once, and
#: each at most `max_file_size` bytes), their total size, and how deep a chain of includes or of
#: extends may go. Fixed bounds, no settings: real projects include a handful of files.
MAX_NAMED_STACK_FILES = 64
MAX_NAMED_STACK_BYTES_FACTOR = 8  # total: 8 x max_file_size (8 MiB by default)
MAX_CHAIN_DEPTH = 16
