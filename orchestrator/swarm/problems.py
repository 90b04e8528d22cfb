"""What a conversion to Swarm found: errors (nothing is converted) and warnings (a key that has
no effect on Swarm), each with the key path in the stack file."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import UserError


class SwarmConversionError(UserError):
    """The stack cannot run on Swarm as it is; `problems` lists every reason as "path: message"."""

    def __init__(self, problems: list[str]) -> None:
        if not problems:
            raise ValueError("SwarmConversionError needs at least one problem")
        self.problems = problems
        super().__init__("cannot run on Swarm:\n" + "\n".join(problems))


@dataclass(slots=True)
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def warn(self, path: str, message: str) -> None:
        note = f"{path}: {message}"
        if note not in self.warnings:
            self.warnings.append(note)

    def raise_if_any(self) -> None:
        if self.errors:
            raise SwarmConversionError(self.errors)
