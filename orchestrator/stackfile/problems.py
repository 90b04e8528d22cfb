"""What went wrong in a stack file, where: the problems a load collects before it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import UserError

#: A place in a stack file: (file name, 1-based line or 0 when unknown).
Where = tuple[str, int]

_QUOTE_LIMIT = 60


def quote(value: Any) -> str:
    """A value as a message shows it: repr, cut short (a hostile value may be megabytes)."""
    try:
        text = repr(value)
    except ValueError:  # an int of over 4,300 digits has no repr
        return "a number too long to show"
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: str  # "services.web.deploy.replicas"; "" for the document itself
    line: int | None
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{place}: {self.path}: {self.message}" if self.path else f"{place}: {self.message}"


class StackFileError(UserError):
    """A stack file cannot be loaded. Carries every problem found, the first one as attributes."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("StackFileError needs at least one problem")
        self.problems = problems
        first = problems[0]
        self.file, self.path, self.line, self.message = first.file, first.path, first.line, first.message
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(slots=True)
class Problems:
    """Collects errors and warnings while a stack is read, so a user sees all of them at once."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, where: Where, path: str, message: str) -> None:
        self.errors.append(Problem(where[0], path, where[1] or None, message))

    def warn(self, path: str, message: str) -> None:
        note = f"{path}: {message}" if path else message
        if note not in self.warnings:
            self.warnings.append(note)

    def raise_if_any(self) -> None:
        """Raise every error, in file order. Of several errors at the same key and line only the
        first found is kept: a later one follows from it (a `${VAR:?}` that failed leaves its
        text, which is then not an image reference either) and would only hide the real one."""
        if self.errors:
            first: dict[tuple[str, int | None, str], Problem] = {}
            for problem in self.errors:
                first.setdefault((problem.file, problem.line, problem.path), problem)
            raise StackFileError(sorted(first.values(), key=_order))


def _order(problem: Problem) -> tuple[str, int, str]:
    return (problem.file, problem.line or 0, problem.path)
