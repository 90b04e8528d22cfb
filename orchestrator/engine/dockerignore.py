""".dockerignore, read and matched exactly as the docker CLI does for a build context.

The rules are moby's (github.com/moby/patternmatcher and its ignorefile reader, which the CLI
uses to archive a context for the engine's builder):

- a line starting with `#` is a comment; lines are trimmed; `!` re-includes what an earlier
  pattern excluded; each pattern is cleaned as a path (`./a//b/` is `a/b`, `..` is folded, a
  leading `/` dropped), so patterns are always relative to the context's root;
- `*` is any run of characters but `/`, `?` one character but `/`, `[...]` a class, `\\` escapes
  the next character; `**` matches any number of directories (none included);
- a path is excluded when the last pattern matching it, or one of its parent directories, is not
  an exception (so `dir` excludes everything under it, and `!dir/keep` brings one file back);
- matching is case-sensitive (docker-py's port lower-cases both sides, which docker does not: one
  reason this module exists instead of that dependency).

`excluded(path, parent)` takes the parent directory's per-pattern results, as the CLI's walk
does, so that a pattern that matched a directory keeps matching all that is inside it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Characters that mean something in a regular expression but nothing in a path pattern.
_REGEX_ONLY = frozenset(".+()|{}$")

#: A path's result for each pattern, handed to its children (moby's MatchInfo).
MatchState = tuple[bool, ...]


class PatternError(ValueError):
    """A .dockerignore pattern docker would refuse (the build fails with it)."""


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a .dockerignore file, cleaned as the CLI's reader does."""
    patterns = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _clean(path: str) -> str:
    """Go's filepath.Clean: normpath, but `//x` is `/x` and `/..` is `/`."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str  # cleaned, without the `!`
    exclusion: bool
    kind: str  # exact | prefix | suffix | regex
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.fullmatch(path) is not None


class IgnorePatterns:
    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [p for p in (_compile(raw) for raw in patterns) if p is not None]
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str, parent: MatchState | None = None) -> tuple[bool, MatchState]:
        """Whether `path` (relative, `/`-separated) is excluded, and its results for its children.
        Without `parent`, each of the path's parent directories is tried as well."""
        matched = False
        results = []
        for i, pattern in enumerate(self.patterns):
            match = bool(parent) and parent[i]  # type: ignore[index]
            if not match and pattern.exclusion == matched:
                match = pattern.match(path)
                if not match and parent is None:
                    match = any(pattern.match(d) for d in _parents(path))
            results.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, tuple(results)

    def may_reinclude_under(self, directory: str) -> bool:
        """An excluded directory must still be walked when an exception names something in it
        (`!dir/keep`): the CLI's test, a plain prefix of the exception's text."""
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _compile(raw: str) -> Pattern | None:
    text = raw.strip()
    if not text:
        return None
    text = _clean(text)
    exclusion = text.startswith("!")
    if exclusion:
        if len(text) == 1:
            raise PatternError('illegal exclusion pattern: "!"')
        text = text[1:]
    kind, expression = _translate(text)
    try:
        regex = re.compile(expression) if kind == "regex" else None
    except re.error as exc:
        raise PatternError(f"syntax error in pattern {raw!r}: {exc}") from None
    return Pattern(text, exclusion, kind, regex)


def _translate(text: str) -> tuple[str, str]:
    """moby's Pattern.compile: the kind of match, and the regular expression when one is needed."""
    out = []
    kind = "exact"
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        start = i
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i == n:  # `**` at the end: everything below
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regex"
                else:
                    out.append("(.*/)?")
                    kind = "regex"
                if start == 0:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _REGEX_ONLY:
            out.append("\\" + ch)
        elif ch == "\\":
            if i == n:
                raise PatternError(f"syntax error in pattern {text!r}: trailing backslash")
            out.append("\\" + text[i])
            i += 1
            kind = "regex"
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        else:
            out.append(ch)
    return kind, "".join(out)
